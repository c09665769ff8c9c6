package client

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

	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/registry"
)

// Client calls one gateway with one token. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	// stream has no overall timeout: event streams last as long as jobs.
	stream *http.Client
	// store is for the presigned URLs of uploads and downloads.
	store *http.Client
	retry time.Duration
}

// Option configures a client.
type Option func(*Client) error

// WithHTTPClient calls the API with c (default: a 30 s timeout per call).
func WithHTTPClient(c *http.Client) Option {
	return func(cl *Client) error {
		if c == nil {
			return errors.New("http client is nil")
		}
		cl.http = c
		return nil
	}
}

// WithReconnectDelay waits d before following a stream again after it
// dropped (default 1 s).
func WithReconnectDelay(d time.Duration) Option {
	return func(cl *Client) error {
		if d < 0 {
			return fmt.Errorf("reconnect delay %s is negative", d)
		}
		cl.retry = d
		return nil
	}
}

// New is a client of the gateway at base (http:// or https://) with the
// bearer token.
func New(base, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not an http(s) URL", ErrGatewayURL, base)
	}
	if token == "" {
		return nil, ErrNoToken
	}
	c := &Client{base: u, token: token, http: &http.Client{Timeout: 30 * time.Second},
		stream: &http.Client{}, store: &http.Client{}, retry: time.Second}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Error is an error answer of the gateway.
type Error struct {
	Status int
	Body   api.ErrorBody
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("gateway: %d %s: %s", e.Status, e.Body.Code, e.Body.Message)
	if len(e.Body.Fields) > 1 || (len(e.Body.Fields) == 1 && !strings.Contains(e.Body.Message, e.Body.Fields[0].Reason)) {
		var parts []string
		for _, f := range e.Body.Fields {
			parts = append(parts, f.Field+": "+f.Reason)
		}
		msg += " (" + strings.Join(parts, "; ") + ")"
	}
	return msg
}

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// call sends a JSON request and decodes a JSON answer into out (nil: none).
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any, headers ...string) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling the gateway: %w", err)
	}
	defer resp.Body.Close()
	return decode(resp, out)
}

func decode(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the gateway's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, &e.Body) != nil || e.Body.Code == "" {
			e.Body = api.ErrorBody{Code: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(b))}
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the gateway's answer: %w", err)
	}
	return nil
}

// Models lists the catalog's models that q selects.
func (c *Client) Models(ctx context.Context, q registry.Query) (api.ModelList, error) {
	v := url.Values{}
	for k, s := range map[string]string{"framework": q.Framework, "task": q.Task, "tag": q.Tag, "q": q.Text} {
		if s != "" {
			v.Set(k, s)
		}
	}
	var out api.ModelList
	return out, c.call(ctx, http.MethodGet, api.Prefix+"/models", v, nil, &out)
}

// Model is one model of the catalog.
func (c *Client) Model(ctx context.Context, framework, name string) (registry.Model, error) {
	var out registry.Model
	return out, c.call(ctx, http.MethodGet, api.Prefix+"/models/"+url.PathEscape(framework)+"/"+url.PathEscape(name), nil, nil, &out)
}

// Train asks for a job. With an idempotency key, a retry of the same
// request answers the job the first one started.
func (c *Client) Train(ctx context.Context, req api.JobRequest, idempotencyKey string) (api.JobAccepted, error) {
	var h []string
	if idempotencyKey != "" {
		h = []string{"Idempotency-Key", idempotencyKey}
	}
	var out api.JobAccepted
	return out, c.call(ctx, http.MethodPost, api.Prefix+"/jobs", nil, req, &out, h...)
}

// JobQuery selects jobs; empty fields select all. Limit 0 is the
// gateway's page size.
type JobQuery struct {
	State, Model, Dataset string
	Limit                 int
	Cursor                string
}

// Jobs is one page of jobs, newest first.
func (c *Client) Jobs(ctx context.Context, q JobQuery) (api.JobList, error) {
	v := url.Values{}
	for k, s := range map[string]string{"state": q.State, "model": q.Model, "dataset": q.Dataset, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	var out api.JobList
	return out, c.call(ctx, http.MethodGet, api.Prefix+"/jobs", v, nil, &out)
}

// Job is a job's status and timeline.
func (c *Client) Job(ctx context.Context, id string) (ledger.JobStatus, error) {
	var out ledger.JobStatus
	return out, c.call(ctx, http.MethodGet, api.Prefix+"/jobs/"+url.PathEscape(id), nil, nil, &out)
}

// Progress is every run.progress of a job.
func (c *Client) Progress(ctx context.Context, id string) (api.Progress, error) {
	var out api.Progress
	return out, c.call(ctx, http.MethodGet, api.Prefix+"/jobs/"+url.PathEscape(id)+"/progress", nil, nil, &out)
}

// Cancel asks for a job to be cancelled.
func (c *Client) Cancel(ctx context.Context, id, reason string) (api.CancelAccepted, error) {
	var out api.CancelAccepted
	return out, c.call(ctx, http.MethodPost, api.Prefix+"/jobs/"+url.PathEscape(id)+"/cancel", nil, api.CancelRequest{Reason: reason}, &out)
}

// Artifacts are a job's outputs with presigned URLs.
func (c *Client) Artifacts(ctx context.Context, id string) (api.Artifacts, error) {
	var out api.Artifacts
	return out, c.call(ctx, http.MethodGet, api.Prefix+"/jobs/"+url.PathEscape(id)+"/artifacts", nil, nil, &out)
}

// Datasets are the dataset versions the ledger knows.
func (c *Client) Datasets(ctx context.Context) (api.DatasetList, error) {
	var out api.DatasetList
	return out, c.call(ctx, http.MethodGet, api.Prefix+"/datasets", nil, nil, &out)
}

// Images are the framework images and the bytes they share.
func (c *Client) Images(ctx context.Context) (api.Images, error) {
	var out api.Images
	return out, c.call(ctx, http.MethodGet, api.Prefix+"/images", nil, nil, &out)
}
