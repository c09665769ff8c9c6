package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Serve answers the broker's HTTP API on ln until ctx ends: the same routes
// as Handler, on fasthttp, whose request parsing allocates next to nothing
// and keeps the ingress off the garbage collector's back. vp broker and
// vp up serve with it; Handler is for embedding in a net/http server.
//
// Serve bounds what a client can hold: open connections (WithMaxConns,
// WithMaxConnsPerIP), the time to send a request (WithReadTimeout), the
// size of its headers (WithMaxHeaderBytes) and of its body
// (WithMaxEventBytes). A body is read as it arrives, so its memory grows
// with the bytes received, never with the Content-Length a client declares.
func (b *Broker) Serve(ctx context.Context, ln net.Listener) error {
	metrics := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(b.m.reg, promhttp.HandlerOpts{}))
	srv := &fasthttp.Server{
		Name:                          "vp-broker",
		MaxRequestBodySize:            int(b.o.maxBytes),
		StreamRequestBody:             true,
		ReadBufferSize:                b.o.maxHeaderBytes,
		ReadTimeout:                   b.o.readTimeout,
		WriteTimeout:                  b.o.readTimeout,
		IdleTimeout:                   idleTimeout,
		Concurrency:                   b.o.maxConns,
		MaxConnsPerIP:                 b.o.maxConnsPerIP,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		SecureErrorLogMessage:         true,
		Logger:                        fastLogger{b.log},
		ErrorHandler:                  b.fastError,
		Handler: func(c *fasthttp.RequestCtx) {
			path := c.Path()
			switch {
			case c.IsGet() && string(path) == "/healthz":
				c.SetStatusCode(http.StatusOK)
			case c.IsGet() && string(path) == "/readyz":
				if b.isReady() {
					c.SetStatusCode(http.StatusOK)
				} else {
					c.SetStatusCode(http.StatusServiceUnavailable)
				}
			case c.IsGet() && string(path) == "/metrics":
				metrics(c)
			default:
				ns, name, ok := splitPath(path)
				switch {
				case !ok:
					b.fastReply(c, b.refuse("", http.StatusNotFound, "not found: ingress is POST /{namespace}/{broker}"))
				case !c.IsPost():
					c.Response.Header.Set("Allow", "POST")
					b.fastReply(c, b.refuse(ns+"/"+name, http.StatusMethodNotAllowed, "method not allowed: use POST"))
				default:
					body, a := b.readBody(c, ns+"/"+name)
					if body == nil {
						c.SetConnectionClose() // what is left of the body is not read
						b.fastReply(c, a)
						return
					}
					b.fastReply(c, b.accept(c, ns, name, ceHeaders(&c.Request.Header), body.Bytes()))
					putBody(body)
				}
			}
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return srv.ShutdownWithContext(context.Background())
	}
}

// bodies are the buffers request bodies are read into.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putBody returns a body buffer to the pool; large ones are left to the
// garbage collector, so an occasional big event does not stay allocated.
func putBody(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 {
		bodies.Put(buf)
	}
}

// readBody reads a request body as it arrives, up to the size limit: the
// buffer grows with the bytes received, whatever Content-Length says. It
// returns nil and the answer when the body cannot be had: too large, too
// slow (the read deadline set by WithReadTimeout passes), or malformed.
func (b *Broker) readBody(c *fasthttp.RequestCtx, key string) (*bytes.Buffer, answer) {
	if n := int64(c.Request.Header.ContentLength()); n > b.o.maxBytes {
		return nil, b.tooLarge(key, n)
	}
	buf := bodies.Get().(*bytes.Buffer)
	buf.Reset()
	var err error
	if s := c.RequestBodyStream(); s != nil {
		_, err = buf.ReadFrom(io.LimitReader(s, b.o.maxBytes+1))
	} else {
		buf.Write(c.PostBody())
	}
	switch {
	case isTimeout(err):
		putBody(buf)
		return nil, b.refuse(key, http.StatusRequestTimeout, fmt.Sprintf("request body not received within %v", b.o.readTimeout))
	case err != nil:
		putBody(buf)
		return nil, b.refuse(key, http.StatusBadRequest, "reading request body: malformed or cut short")
	case int64(buf.Len()) > b.o.maxBytes:
		putBody(buf)
		return nil, b.tooLarge(key, -1)
	}
	return buf, answer{}
}

// fastError answers what fasthttp could not read as a request. It never
// echoes what the client sent.
func (b *Broker) fastError(c *fasthttp.RequestCtx, err error) {
	key := ""
	if ns, name, ok := splitPath(c.Request.URI().Path()); ok {
		key = ns + "/" + name
	}
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		b.fastReply(c, b.tooLarge(key, int64(c.Request.Header.ContentLength())))
	case isSmallBuffer(err):
		b.fastReply(c, b.refuse(key, http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("request line and headers are over the limit of %d bytes", b.o.maxHeaderBytes)))
	case isTimeout(err):
		b.fastReply(c, b.refuse(key, http.StatusRequestTimeout, fmt.Sprintf("request not received within %v", b.o.readTimeout)))
	default:
		b.fastReply(c, b.refuse(key, http.StatusBadRequest, "malformed HTTP request"))
	}
}

// fastLogger sends what fasthttp logs (connections refused over the
// limits) to the broker's logger.
type fastLogger struct{ l zerolog.Logger }

func (f fastLogger) Printf(format string, args ...any) { f.l.Warn().Msgf(format, args...) }

func isSmallBuffer(err error) bool {
	_, ok := errors.AsType[*fasthttp.ErrSmallBuffer](err)
	return ok
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

func (b *Broker) fastReply(c *fasthttp.RequestCtx, a answer) {
	c.SetStatusCode(a.code)
	if a.body != nil {
		c.SetContentType("application/json")
		_ = json.NewEncoder(c).Encode(a.body)
	}
}

// splitPath splits "/{namespace}/{broker}".
func splitPath(p []byte) (string, string, bool) {
	if len(p) < 4 || p[0] != '/' {
		return "", "", false
	}
	ns, name, ok := bytes.Cut(p[1:], []byte{'/'})
	if !ok || len(ns) == 0 || len(name) == 0 || bytes.IndexByte(name, '/') >= 0 {
		return "", "", false
	}
	return string(ns), string(name), true
}

// ceHeaders copies the headers the ingress reads: the ce-* attributes and
// Content-Type.
func ceHeaders(h *fasthttp.RequestHeader) http.Header {
	out := make(http.Header, 12)
	for k, v := range h.All() {
		if len(k) > 3 && (k[0] == 'C' || k[0] == 'c') && (k[1] == 'e' || k[1] == 'E') && k[2] == '-' {
			key := http.CanonicalHeaderKey(string(k))
			out[key] = append(out[key], string(v))
		}
	}
	if ct := h.ContentType(); len(ct) > 0 {
		out[hdrContentType] = []string{string(ct)}
	}
	return out
}
