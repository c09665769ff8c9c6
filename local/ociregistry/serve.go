package ociregistry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"
)

// shutdownGrace is how long Serve waits for requests in flight once its
// context ends; connections still busy then are closed.
const shutdownGrace = 10 * time.Second

// writeChunk bounds one write to a client, so the progress timeout measures
// how long the client takes for at most this many bytes.
const writeChunk = 64 << 10

// Serve answers the registry API on ln until ctx ends, then shuts down
// gracefully. Headers must arrive within the read header timeout, an idle
// keep-alive connection is closed after the idle timeout, and a connection
// that makes no progress, reading a request body or writing a response,
// for the progress timeout is cut.
func (r *Registry) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: r.o.readHeaderTimeout,
		IdleTimeout:       r.o.idleTimeout,
		ConnState:         r.state,
		ErrorLog:          log.New(logWriter{r}, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(progressListener{Listener: ln, timeout: r.o.progressTimeout}) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving the registry: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		r.log.WithError(err).Warn("closing registry connections still busy after the shutdown grace")
		if err := srv.Close(); err != nil {
			return fmt.Errorf("closing the registry server: %w", err)
		}
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving the registry: %w", err)
	}
	return nil
}

// logWriter sends net/http's own log lines to the registry's logger.
type logWriter struct{ r *Registry }

func (w logWriter) Write(p []byte) (int, error) {
	w.r.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

// progressListener hands out connections whose writes must make progress.
type progressListener struct {
	net.Listener
	timeout time.Duration
}

func (l progressListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &progressConn{Conn: c, timeout: l.timeout}, nil
}

// progressConn moves its write deadline before every chunk it writes: a
// client that takes a response slowly but steadily keeps its connection,
// one that stops reading loses it after the progress timeout. (net/http
// sets no write deadline of its own when http.Server.WriteTimeout is 0.)
type progressConn struct {
	net.Conn
	timeout time.Duration
}

func (c *progressConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), writeChunk)]
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
			return n, err
		}
		m, err := c.Conn.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		p = p[m:]
	}
	return n, nil
}

// CloseWrite keeps net/http's half-close (it lets a client read an error
// answer before the connection goes).
func (c *progressConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// progressBody moves the connection's read deadline before every read of a
// request body, so a body that stops arriving is cut after the progress
// timeout however long the whole upload takes. Once the body has been read
// to its end, the deadline is lifted: net/http then watches the connection in the
// background for the client going away, and that read must not time out
// while the handler works (verifying a multi-GiB blob, say).
type progressBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	off     bool // the body ended, or the connection has no deadlines
}

func (b *progressBody) Read(p []byte) (int, error) {
	if b.off {
		return b.ReadCloser.Read(p)
	}
	if err := b.rc.SetReadDeadline(time.Now().Add(b.timeout)); err != nil {
		b.off = true // http.ErrNotSupported: a recorder, say
		return b.ReadCloser.Read(p)
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.off = true
		_ = b.rc.SetReadDeadline(time.Time{}) // best effort: the body is over either way
	case err != nil:
		// A body cut short (the deadline passed, the client went): the
		// deadline stays, so net/http's read of the rest fails at once and
		// the connection is closed.
		b.off = true
	}
	return n, err
}

// finish gives net/http's read of what a handler left of the body a fresh
// progress window (it reads up to 256 KiB so the connection can be kept).
func (b *progressBody) finish() {
	if !b.off {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout)) // best effort, as in Read
	}
}
