package dockerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

const (
	// DefaultHost is the engine's socket where DOCKER_HOST is unset.
	DefaultHost = "unix:///var/run/docker.sock"
	// NewestAPI is the newest Engine API version this client speaks: the
	// requests it sends and the fields it reads are the same from
	// OldestAPI to NewestAPI. It speaks the newest version both it and the
	// engine speak (Debian's docker.io 20.10 speaks 1.41; Docker 29
	// refuses versions below 1.44).
	NewestAPI = "1.47"
	// OldestAPI is the oldest it speaks: device requests (GPUs) came in
	// 1.40.
	OldestAPI = "1.40"
)

// Client is a connection to one Docker Engine. Its methods are safe for
// concurrent use.
type Client struct {
	host string
	base string // scheme and host of request URLs
	http *http.Client

	mu      sync.Mutex
	version string // negotiated (or pinned) API version; "" before
}

// Option adjusts New.
type Option func(*Client) error

// WithVersion pins the API version instead of asking the engine.
func WithVersion(v string) Option {
	return func(c *Client) error {
		if _, _, err := parseVersion(v); err != nil {
			return err
		}
		c.version = v
		return nil
	}
}

// New is a client of the engine at host: unix:///path/to/socket or
// tcp://host:port (plain HTTP; port 2375 when none is given), DefaultHost
// when host is empty, as DOCKER_HOST names it. Nothing is dialled until
// the first call.
func New(host string, opts ...Option) (*Client, error) {
	if host == "" {
		host = DefaultHost
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("parsing Docker host %q: %w", host, err)
	}
	c := &Client{host: host}
	tr := &http.Transport{MaxIdleConns: 8, IdleConnTimeout: 0, DisableCompression: true}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Opaque
		}
		if path == "" {
			return nil, fmt.Errorf("%w %q: no socket path", ErrUnsupportedHost, host)
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://docker"
	case "tcp":
		addr := u.Host
		if addr == "" {
			return nil, fmt.Errorf("%w %q: no address", ErrUnsupportedHost, host)
		}
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "2375")
		}
		c.base = "http://" + addr
	default:
		return nil, fmt.Errorf("%w %q: want unix:// or tcp://", ErrUnsupportedHost, host)
	}
	c.http = &http.Client{Transport: tr}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Host is the address the client dials.
func (c *Client) Host() string { return c.host }

// Ping asks the engine whether it answers, and returns the newest API
// version it speaks.
func (c *Client) Ping(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, http.MethodGet, "/_ping", nil, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", fmt.Errorf("reading the engine's ping: %w", err)
	}
	return resp.Header.Get("Api-Version"), nil
}

// Version is the API version the client speaks to the engine: the newest
// both speak, asked once (or the pinned one).
func (c *Client) Version(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version != "" {
		return c.version, nil
	}
	engine, err := c.Ping(ctx)
	if err != nil {
		return "", err
	}
	v, err := negotiate(engine)
	if err != nil {
		return "", err
	}
	c.version = v
	return v, nil
}

// negotiate is the version to speak to an engine whose newest is engine
// ("" for an engine that did not say: the oldest then).
func negotiate(engine string) (string, error) {
	if engine == "" {
		return OldestAPI, nil
	}
	if less(engine, OldestAPI) {
		return "", fmt.Errorf("%w: it speaks %s, this client %s to %s", ErrOldEngine, engine, OldestAPI, NewestAPI)
	}
	if less(NewestAPI, engine) {
		return NewestAPI, nil
	}
	return engine, nil
}

func parseVersion(v string) (int, int, error) {
	maj, min, ok := strings.Cut(v, ".")
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(min)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("API version %q: want MAJOR.MINOR", v)
	}
	return a, b, nil
}

// less reports whether version a is older than b; a version that does not
// parse counts as the oldest.
func less(a, b string) bool {
	am, an, errA := parseVersion(a)
	bm, bn, errB := parseVersion(b)
	if errA != nil || errB != nil {
		return errA != nil && errB == nil
	}
	return am < bm || am == bm && an < bn
}

// do sends a request to the versioned API: body, when not nil, as JSON.
// An answer of status 400 and above is an *Error; the caller closes the
// body of any other.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	v, err := c.Version(ctx)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the body of %s %s: %w", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	return c.send(ctx, method, "/v"+v+path, query, r)
}

func (c *Client) send(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Response, error) {
	u := c.base + (&url.URL{Path: path}).EscapedPath()
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("making the request %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the Docker Engine at %s: %w", c.host, err)
	}
	if resp.StatusCode < http.StatusBadRequest {
		return resp, nil
	}
	defer resp.Body.Close()
	e := &Error{Method: method, Path: path, StatusCode: resp.StatusCode}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		e.Message = fmt.Sprintf("(reading the answer: %v)", err)
		return nil, e
	}
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &m) == nil && m.Message != "" {
		e.Message = m.Message
	} else {
		e.Message = strings.TrimSpace(string(b))
	}
	return nil, e
}

// call sends a request and decodes a JSON answer into out (when not nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any) (int, error) {
	resp, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
		}
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	return resp.StatusCode, nil
}
