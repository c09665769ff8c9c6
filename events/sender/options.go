package sender

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"
)

// Policy is the one retry policy of the platform's senders. A delivery is
// tried again only after an answer that may change by itself (see
// Retryable) or no answer at all; the waits grow exponentially with
// jitter, and both the attempts and the total time are bounded.
type Policy struct {
	// Attempts is the most requests made for one event, the first one
	// included (default 8; 1 means no retry).
	Attempts int
	// Initial is the wait before the second attempt (default 200 ms); it
	// doubles for each later one, up to Max (default 5 s). Each wait is
	// drawn at random between half its value and its value (jitter), so
	// senders refused together do not come back together.
	Initial, Max time.Duration
	// Elapsed bounds the whole delivery from the first attempt (default
	// 30 s): no wait is begun that would end after it. A Retry-After
	// answer is honoured (it replaces a shorter backoff) only within this
	// bound and the context's deadline; past them the delivery stops at
	// once with the last answer.
	Elapsed time.Duration
}

// DefaultPolicy is the policy a sender gets unless WithPolicy says
// otherwise: up to 8 attempts (waits of about 0.2, 0.4, 0.8, 1.6, 3.2, 5
// and 5 s) within 30 s.
var DefaultPolicy = Policy{Attempts: 8, Initial: 200 * time.Millisecond, Max: 5 * time.Second, Elapsed: 30 * time.Second}

// Default attempt timeout and reply limit.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultMaxReply = 64 << 10
)

type options struct {
	client     *http.Client
	structured bool
	policy     Policy
	maxReply   int64
	extensions map[string]string
}

// Option configures a sender.
type Option func(*options) error

// WithClient sends with c instead of the default client (a 10 s timeout per
// attempt, redirects not followed). c's own redirect policy then applies.
func WithClient(c *http.Client) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("client is nil")
		}
		o.client = c
		return nil
	}
}

// WithStructured sends in structured mode (the whole event as
// application/cloudevents+json) instead of binary mode.
func WithStructured() Option {
	return func(o *options) error { o.structured = true; return nil }
}

// WithPolicy replaces the retry policy; zero fields keep DefaultPolicy's.
func WithPolicy(p Policy) Option {
	return func(o *options) error {
		if p.Attempts < 0 || p.Initial < 0 || p.Max < 0 || p.Elapsed < 0 {
			return fmt.Errorf("retry policy %+v has a negative field", p)
		}
		if p.Attempts != 0 {
			o.policy.Attempts = p.Attempts
		}
		if p.Initial != 0 {
			o.policy.Initial = p.Initial
		}
		if p.Max != 0 {
			o.policy.Max = p.Max
		}
		if p.Elapsed != 0 {
			o.policy.Elapsed = p.Elapsed
		}
		return nil
	}
}

// WithMaxReply bounds how much of an answer's body is read (default 64
// KiB); the rest is dropped with the connection.
func WithMaxReply(n int64) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("reply limit %d is negative", n)
		}
		o.maxReply = n
		return nil
	}
}

var extNameRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// WithExtensions sets extension attributes on every event sent, over what
// the event carries (as Knative's K_CE_OVERRIDES does).
func WithExtensions(ext map[string]string) Option {
	return func(o *options) error {
		for k, v := range ext {
			if !extNameRE.MatchString(k) {
				return fmt.Errorf("extension name %q is not 1-20 lower-case letters or digits", k)
			}
			if o.extensions == nil {
				o.extensions = map[string]string{}
			}
			o.extensions[k] = v
		}
		return nil
	}
}

func makeOptions(opts []Option) (options, error) {
	o := options{policy: DefaultPolicy, maxReply: DefaultMaxReply}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if o.policy.Initial > o.policy.Max {
		return o, fmt.Errorf("retry policy: initial wait %s is longer than the longest wait %s", o.policy.Initial, o.policy.Max)
	}
	if o.client == nil {
		o.client = &http.Client{
			Timeout:       DefaultTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return o, nil
}
