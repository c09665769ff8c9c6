package sender

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// Interface delivers one event. *HTTP and *Lines implement it.
type Interface interface {
	Send(ctx context.Context, e event.Event) error
}

// HTTP posts events to one URL (a broker ingress, a K_SINK) with the retry
// policy. It is safe for concurrent use.
type HTTP struct {
	url string
	o   options
	// sleep waits between attempts (a test records the waits instead).
	sleep func(ctx context.Context, d time.Duration) error
}

var _ Interface = (*HTTP)(nil)

// New makes a sender to target, an absolute http or https URL.
func New(target string, opts ...Option) (*HTTP, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parsing sink URL %q: %w", target, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sink URL %q is not an absolute http(s) URL", target)
	}
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	return &HTTP{url: target, o: o, sleep: sleep}, nil
}

// URL is where the sender posts.
func (s *HTTP) URL() string { return s.url }

// Retryable reports whether an answer with this status is tried again:
//
//   - 404 Not Found: a sink that is not routed yet (a Knative Service
//     rolling out), as Knative's delivery retries it;
//   - 408 Request Timeout, 425 Too Early, 429 Too Many Requests;
//   - 409 Conflict: Knative's delivery retries it (a sink busy with the same
//     resource);
//   - every 5xx except 501 Not Implemented and 505 HTTP Version Not
//     Supported, which will not change.
//
// Every other answer is final: 2xx is success; 3xx (redirects are not
// followed: a POST turned into a GET would lose the event), 400, 401, 403,
// 413 (the event will not shrink), 415 and the rest of 4xx are refusals. A
// request that got no answer (connection refused or reset, the attempt's
// timeout) is tried again too, unless TLS verification failed.
func Retryable(status int) bool {
	switch {
	case status == 404, status == 408, status == 409, status == 425, status == 429:
		return true
	case status == 501, status == 505:
		return false
	}
	return status >= 500 && status <= 599
}

// Send delivers e: it validates e, sets the sender's extensions, and posts
// it (binary mode unless WithStructured) until the sink accepts it (2xx),
// refuses it for good, or the policy's attempts or time run out. A failed
// delivery is an *Error with the last status and body; when ctx ends first,
// the *Error wraps ctx's error.
func (s *HTTP) Send(ctx context.Context, e event.Event) error {
	if len(s.o.extensions) > 0 {
		e = e.Clone()
		for k, v := range s.o.extensions {
			e.SetExtension(k, v)
		}
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("validating event: %w", err)
	}
	var structured []byte
	if s.o.structured {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encoding event: %w", err)
		}
		structured = b
	}
	p := s.o.policy
	start := time.Now()
	fail := &Error{URL: s.url}
	for attempt := 1; ; attempt++ {
		fail.Attempts = attempt
		req, err := s.request(ctx, e, structured)
		if err != nil {
			return fmt.Errorf("building request to %s: %w", s.url, err)
		}
		status, body, retryAfter, err := s.once(req)
		if err == nil && status/100 == 2 {
			return nil
		}
		fail.Status, fail.Body, fail.Err = status, body, err
		if ctx.Err() != nil {
			fail.Err = ended(ctx.Err(), err)
			return fail
		}
		if (err == nil && !Retryable(status)) || (err != nil && !retryableTransport(err)) || attempt >= p.Attempts {
			return fail
		}
		wait := backoff(p, attempt)
		if retryAfter > wait {
			wait = retryAfter
		}
		end := time.Now().Add(wait)
		if end.After(start.Add(p.Elapsed)) {
			return fail
		}
		if dl, ok := ctx.Deadline(); ok && end.After(dl) {
			return fail
		}
		if serr := s.sleep(ctx, wait); serr != nil {
			fail.Err = ended(serr, err)
			return fail
		}
	}
}

func (s *HTTP) request(ctx context.Context, e event.Event, structured []byte) (*http.Request, error) {
	if structured == nil {
		return cehttp.NewHTTPRequestFromEvent(ctx, s.url, e)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(structured))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	return req, nil
}

// once makes one request and reads at most the reply limit of its answer.
func (s *HTTP) once(req *http.Request) (status int, body string, retryAfter time.Duration, err error) {
	resp, err := s.o.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in Error already
		}
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, s.o.maxReply))
	return resp.StatusCode, string(b), parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), nil
}

// retryableTransport reports whether a request that got no answer is tried
// again: yes, unless TLS verification failed, which will not change.
func retryableTransport(err error) bool {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	return !errors.As(err, &unknownCA) && !errors.As(err, &hostname) && !errors.As(err, &verify)
}

// backoff is the wait after attempt n (1-based): Initial×2^(n-1), at most
// Max, drawn between half of it and all of it.
func backoff(p Policy, n int) time.Duration {
	d := p.Max
	if n-1 < 32 {
		if x := p.Initial << (n - 1); x > 0 && x < p.Max {
			d = x
		}
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// parseRetryAfter reads a Retry-After header: delta-seconds or an HTTP
// date; 0 when absent, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 24*60*60)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// ended is the context's error, with the last attempt's error beside it.
func ended(ctxErr, last error) error {
	if last == nil || errors.Is(last, ctxErr) {
		return ctxErr
	}
	return fmt.Errorf("%w (last attempt: %v)", ctxErr, last)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
