package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Serve answers the broker's HTTP API on ln until ctx ends: the same routes
// as Handler, on fasthttp, whose request parsing allocates next to nothing
// and keeps the ingress off the garbage collector's back. vp broker and
// vp up serve with it; Handler is for embedding in a net/http server.
func (b *Broker) Serve(ctx context.Context, ln net.Listener) error {
	metrics := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(b.m.reg, promhttp.HandlerOpts{}))
	srv := &fasthttp.Server{
		Name:                          "vp-broker",
		MaxRequestBodySize:            int(b.o.maxBytes),
		ReadTimeout:                   5 * time.Minute,
		IdleTimeout:                   5 * time.Minute,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		ErrorHandler: func(c *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				b.fastReply(c, b.tooLarge(strings.TrimPrefix(string(c.Path()), "/"), int64(c.Request.Header.ContentLength())))
				return
			}
			b.fastReply(c, answer{http.StatusBadRequest, &ErrorBody{Error: err.Error()}})
		},
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
					b.fastReply(c, answer{http.StatusNotFound, &ErrorBody{Error: "not found: ingress is POST /{namespace}/{broker}"}})
				case !c.IsPost():
					c.Response.Header.Set("Allow", "POST")
					b.fastReply(c, answer{http.StatusMethodNotAllowed, &ErrorBody{Error: "method not allowed: use POST"}})
				default:
					b.fastReply(c, b.accept(c, ns, name, ceHeaders(&c.Request.Header), c.PostBody()))
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
