package mlflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one MLflow tracking server. It is safe for concurrent use.
type Client struct {
	base    *url.URL // the tracking URI; API paths go below it
	http    *http.Client
	timeout time.Duration
	auth    string // the Authorization header, "" for none
	observe func(endpoint string, status int, d time.Duration)

	token, user, password string
	basic                 bool
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient sends requests with hc (default: a client of its own).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("a nil HTTP client")
		}
		c.http = hc
		return nil
	}
}

// WithToken authenticates with a bearer token (MLflow's
// MLFLOW_TRACKING_TOKEN).
func WithToken(token string) Option {
	return func(c *Client) error {
		if token == "" {
			return errors.New("an empty token")
		}
		c.token = token
		return nil
	}
}

// WithBasicAuth authenticates with a user name and password (MLflow's
// MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD).
func WithBasicAuth(user, password string) Option {
	return func(c *Client) error {
		if user == "" || password == "" {
			return errors.New("basic authentication needs both a user name and a password")
		}
		c.user, c.password, c.basic = user, password, true
		return nil
	}
}

// WithTimeout bounds each request (default 10 s).
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("timeout %s: not positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithObserver calls f after each request with the endpoint, the HTTP
// status (0 when no answer came) and the time it took.
func WithObserver(f func(endpoint string, status int, d time.Duration)) Option {
	return func(c *Client) error {
		c.observe = f
		return nil
	}
}

// New is a client of the server at trackingURI (http or https, optionally
// with a path prefix). Credentials go in options, not in the URI.
func New(trackingURI string, opts ...Option) (*Client, error) {
	// Messages name the URI with any password in it masked.
	u, err := url.Parse(trackingURI)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %w", ErrBadTrackingURI)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%q: %w", u.Redacted(), ErrBadTrackingURI)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: credentials in the tracking URI are not taken (they would show wherever it is printed); use a token or basic authentication: %w", u.Redacted(), ErrBadTrackingURI)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: a query or fragment: %w", u.Redacted(), ErrBadTrackingURI)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	c := &Client{base: u, timeout: 10 * time.Second}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("configuring the MLflow client: %w", err)
		}
	}
	switch {
	case c.token != "" && c.basic:
		return nil, errors.New("configuring the MLflow client: a token and basic authentication, not both")
	case c.token != "":
		c.auth = "Bearer " + c.token
	case c.basic:
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(c.user, c.password)
		c.auth = req.Header.Get("Authorization")
	}
	c.token, c.password = "", ""
	if c.http == nil {
		c.http = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return c, nil
}

// URI is the tracking URI, for logs (it holds no credentials).
func (c *Client) URI() string { return c.base.String() }

// do sends one API request: in as a JSON body (POST) or query (GET), and
// decodes the answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, endpoint string, query url.Values, in, out any) error {
	u := *c.base
	u.Path += "/api/2.0/mlflow/" + endpoint
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the %s request: %w", endpoint, err)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("making the %s request: %w", endpoint, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if c.observe != nil {
			c.observe(endpoint, 0, time.Since(start))
		}
		return fmt.Errorf("calling mlflow %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if c.observe != nil {
		c.observe(endpoint, resp.StatusCode, time.Since(start))
	}
	if err != nil {
		return fmt.Errorf("reading the answer of mlflow %s: %w", endpoint, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Endpoint: endpoint, Status: resp.StatusCode}
		var m struct {
			Code    string `json:"error_code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &m) == nil && m.Code != "" {
			ae.Code, ae.Message = m.Code, m.Message
		} else {
			ae.Message = strings.TrimSpace(string(b))
			if len(ae.Message) > 512 {
				ae.Message = ae.Message[:512] + "..."
			}
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the answer of mlflow %s: %w", endpoint, err)
	}
	return nil
}

func (c *Client) get(ctx context.Context, endpoint string, q url.Values, out any) error {
	return c.do(ctx, http.MethodGet, endpoint, q, nil, out)
}

func (c *Client) post(ctx context.Context, endpoint string, in, out any) error {
	return c.do(ctx, http.MethodPost, endpoint, nil, in, out)
}
