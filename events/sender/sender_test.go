package sender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/internal/testsupport"
)

// fast keeps the waits short: the tests count attempts, never time.
var fast = WithPolicy(Policy{Attempts: 4, Initial: time.Millisecond, Max: 2 * time.Millisecond})

// answer is what the scripted sink says to one request; status 0 drops the
// connection without answering.
type answer struct {
	status     int
	retryAfter string
	body       string
}

// script is a real HTTP sink that gives its answers in turn (the last one
// for every later request) and keeps the events it got.
type script struct {
	*httptest.Server
	mu      sync.Mutex
	answers []answer
	got     []*event.Event
	onReq   func(n int)
}

func newScript(t *testing.T, answers ...answer) *script {
	t.Helper()
	s := &script{answers: answers}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			t.Errorf("sink got a request that is no CloudEvent: %v", err)
		}
		s.mu.Lock()
		s.got = append(s.got, e)
		n := len(s.got)
		a := s.answers[min(n, len(s.answers))-1]
		on := s.onReq
		s.mu.Unlock()
		if on != nil {
			on(n)
		}
		if a.status == 0 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("hijacking: %v", err)
				return
			}
			conn.Close()
			return
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		w.Write([]byte(a.body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *script) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func testEvent(t *testing.T) event.Event {
	t.Helper()
	e := event.New()
	e.SetID("id-1")
	e.SetType("com.example.test")
	e.SetSource("/test")
	if err := e.SetData("application/json", map[string]string{"hello": "world"}); err != nil {
		t.Fatal(err)
	}
	return e
}

func newSender(t *testing.T, url string, opts ...Option) *HTTP {
	t.Helper()
	s, err := New(url, opts...)
	if err != nil {
		t.Fatalf("New(%q) = %v", url, err)
	}
	return s
}

func TestRetryable(t *testing.T) {
	retried := []int{404, 408, 409, 425, 429, 500, 502, 503, 504, 507, 599}
	final := []int{200, 202, 301, 302, 307, 308, 400, 401, 403, 405, 410, 413, 415, 422, 501, 505}
	for _, c := range retried {
		if !Retryable(c) {
			t.Errorf("Retryable(%d) = false, want true", c)
		}
	}
	for _, c := range final {
		if Retryable(c) {
			t.Errorf("Retryable(%d) = true, want false", c)
		}
	}
}

// TestSendRetries answers with each kind of status and counts what the
// sender does about it.
func TestSendRetries(t *testing.T) {
	cases := []struct {
		desc       string
		answers    []answer
		wantReqs   int
		wantStatus int // of the *Error; 0 for success
	}{
		{"accepted at once", []answer{{status: 202}}, 1, 0},
		{"404 then accepted", []answer{{status: 404}, {status: 202}}, 2, 0},
		{"408 then accepted", []answer{{status: 408}, {status: 200}}, 2, 0},
		{"409 then accepted", []answer{{status: 409}, {status: 202}}, 2, 0},
		{"425 then accepted", []answer{{status: 425}, {status: 202}}, 2, 0},
		{"429 then accepted", []answer{{status: 429}, {status: 202}}, 2, 0},
		{"500, 502, 503, 504 then accepted", []answer{{status: 500}, {status: 502}, {status: 503}, {status: 202}}, 4, 0},
		{"no answer then accepted", []answer{{status: 0}, {status: 202}}, 2, 0},
		{"400 is final", []answer{{status: 400, body: `{"fields":[]}`}}, 1, 400},
		{"401 is final", []answer{{status: 401}}, 1, 401},
		{"403 is final", []answer{{status: 403}}, 1, 403},
		{"413 is final", []answer{{status: 413}}, 1, 413},
		{"415 is final", []answer{{status: 415}}, 1, 415},
		{"501 is final", []answer{{status: 501}}, 1, 501},
		{"505 is final", []answer{{status: 505}}, 1, 505},
		{"a redirect is final, not followed", []answer{{status: 307}}, 1, 307},
		{"503 until the attempts run out", []answer{{status: 503, body: "busy"}}, 4, 503},
		{"409 until the attempts run out", []answer{{status: 409}}, 4, 409},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			sink := newScript(t, c.answers...)
			err := newSender(t, sink.URL, fast).Send(context.Background(), testEvent(t))
			if got := sink.requests(); got != c.wantReqs {
				t.Errorf("Send() made %d requests, want %d", got, c.wantReqs)
			}
			if c.wantStatus == 0 {
				if err != nil {
					t.Errorf("Send() = %v, want nil", err)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Send() = %v, want an *Error", err)
			}
			if se.Status != c.wantStatus || se.Attempts != c.wantReqs || se.URL != sink.URL {
				t.Errorf("Send() = %+v, want status %d after %d attempts", se, c.wantStatus, c.wantReqs)
			}
			if last := c.answers[len(c.answers)-1]; se.Body != last.body {
				t.Errorf("Send() error body %q, want %q", se.Body, last.body)
			}
		})
	}
}

func TestSendNoAnswer(t *testing.T) {
	t.Run("connection dropped every time", func(t *testing.T) {
		sink := newScript(t, answer{status: 0})
		err := newSender(t, sink.URL, fast).Send(context.Background(), testEvent(t))
		var se *Error
		if !errors.As(err, &se) || se.Status != 0 || se.Err == nil || se.Attempts != 4 {
			t.Fatalf("Send() = %#v, want an *Error with no status after 4 attempts", err)
		}
		if got := sink.requests(); got != 4 {
			t.Errorf("Send() made %d requests, want 4", got)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		url := "http://" + testsupport.FreeAddr(t) + "/"
		err := newSender(t, url, fast).Send(context.Background(), testEvent(t))
		var se *Error
		var oe *net.OpError
		if !errors.As(err, &se) || se.Attempts != 4 || !errors.As(err, &oe) {
			t.Errorf("Send() = %v, want an *Error wrapping a *net.OpError after 4 attempts", err)
		}
	})
}

// TestSendElapsedBound: with attempts to spare, the total time bound stops
// the delivery.
func TestSendElapsedBound(t *testing.T) {
	sink := newScript(t, answer{status: 503})
	s := newSender(t, sink.URL, WithPolicy(Policy{Attempts: 100000, Initial: time.Millisecond, Max: 2 * time.Millisecond, Elapsed: 50 * time.Millisecond}))
	err := s.Send(context.Background(), testEvent(t))
	var se *Error
	if !errors.As(err, &se) || se.Status != 503 {
		t.Fatalf("Send() = %v, want an *Error with 503", err)
	}
	if n := sink.requests(); n != se.Attempts || n >= 100000 {
		t.Errorf("Send() made %d requests (error says %d), want fewer than the 100000 attempts allowed", n, se.Attempts)
	}
}

func TestSendContext(t *testing.T) {
	t.Run("cancelled during the second attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sink := newScript(t, answer{status: 503})
		sink.onReq = func(n int) {
			if n == 2 {
				cancel()
			}
		}
		s := newSender(t, sink.URL, WithPolicy(Policy{Attempts: 100, Initial: time.Millisecond, Max: 2 * time.Millisecond}))
		err := s.Send(ctx, testEvent(t))
		var se *Error
		if !errors.Is(err, context.Canceled) || !errors.As(err, &se) || se.Attempts != 2 {
			t.Errorf("Send() = %v, want an *Error wrapping context.Canceled after 2 attempts", err)
		}
		if n := sink.requests(); n != 2 {
			t.Errorf("Send() made %d requests, want 2", n)
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		sink := newScript(t, answer{status: 202})
		if err := newSender(t, sink.URL, fast).Send(ctx, testEvent(t)); !errors.Is(err, context.Canceled) {
			t.Errorf("Send() = %v, want context.Canceled", err)
		}
		if n := sink.requests(); n != 0 {
			t.Errorf("Send() made %d requests, want 0", n)
		}
	})
	t.Run("deadline before the next attempt", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sink := newScript(t, answer{status: 503, retryAfter: "120"}, answer{status: 202})
		s := newSender(t, sink.URL, WithPolicy(Policy{Elapsed: time.Hour, Max: time.Hour}))
		err := s.Send(ctx, testEvent(t))
		var se *Error
		if !errors.As(err, &se) || se.Status != 503 || se.Attempts != 1 {
			t.Errorf("Send() = %v, want the 503 at once: the Retry-After ends past the deadline", err)
		}
	})
}

func TestSendRetryAfter(t *testing.T) {
	cases := []struct {
		desc      string
		answers   []answer
		wantWaits []time.Duration
		wantReqs  int
		wantErr   bool
	}{
		{"seconds replace a shorter backoff", []answer{{status: 503, retryAfter: "7"}, {status: 202}}, []time.Duration{7 * time.Second}, 2, false},
		{"on 429 too", []answer{{status: 429, retryAfter: "3"}, {status: 429, retryAfter: "1"}, {status: 202}}, []time.Duration{3 * time.Second, time.Second}, 3, false},
		{"beyond the 30 s bound: give up at once", []answer{{status: 503, retryAfter: "3600"}}, nil, 1, true},
		{"not on a final status", []answer{{status: 400, retryAfter: "1"}}, nil, 1, true},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			sink := newScript(t, c.answers...)
			s := newSender(t, sink.URL)
			var waits []time.Duration
			s.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
			err := s.Send(context.Background(), testEvent(t))
			if (err != nil) != c.wantErr {
				t.Errorf("Send() = %v, want error %v", err, c.wantErr)
			}
			if diff := cmp.Diff(c.wantWaits, waits); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			if n := sink.requests(); n != c.wantReqs {
				t.Errorf("Send() made %d requests, want %d", n, c.wantReqs)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		" 12 ":                          12 * time.Second,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"999999999999":                  24 * time.Hour,
		"Fri, 02 Jan 2026 03:04:35 GMT": 30 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	p := DefaultPolicy
	for n := 1; n <= 40; n++ {
		full := p.Max
		if n <= 5 {
			full = p.Initial << (n - 1)
		}
		for range 20 {
			if d := backoff(p, n); d < full/2 || d > full {
				t.Fatalf("backoff(attempt %d) = %s, want within [%s, %s]", n, d, full/2, full)
			}
		}
	}
}

func TestSendModes(t *testing.T) {
	for _, structured := range []bool{false, true} {
		t.Run("structured="+strconv.FormatBool(structured), func(t *testing.T) {
			var ct string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ct = r.Header.Get("Content-Type")
				w.WriteHeader(202)
			}))
			defer srv.Close()
			var opts []Option
			want := "application/json"
			if structured {
				opts = append(opts, WithStructured())
				want = "application/cloudevents+json"
			}
			if err := newSender(t, srv.URL, opts...).Send(context.Background(), testEvent(t)); err != nil {
				t.Fatal(err)
			}
			if ct != want {
				t.Errorf("Content-Type = %q, want %q", ct, want)
			}
		})
	}
	sink := newScript(t, answer{status: 202})
	if err := newSender(t, sink.URL, WithStructured()).Send(context.Background(), testEvent(t)); err != nil {
		t.Fatal(err)
	}
	if got := sink.got[0]; got.ID() != "id-1" || string(got.Data()) != `{"hello":"world"}` {
		t.Errorf("sink got %v", got)
	}
}

func TestSendReplyBound(t *testing.T) {
	sink := newScript(t, answer{status: 400, body: strings.Repeat("x", 1<<20)})
	err := newSender(t, sink.URL, WithMaxReply(100)).Send(context.Background(), testEvent(t))
	var se *Error
	if !errors.As(err, &se) || len(se.Body) != 100 {
		t.Errorf("Send() = %T with a body of %d bytes, want an *Error with 100", err, len(se.Body))
	}
}

func TestSendInvalidEvent(t *testing.T) {
	sink := newScript(t, answer{status: 202})
	e := testEvent(t)
	e.SetSource("")
	if err := newSender(t, sink.URL).Send(context.Background(), e); err == nil {
		t.Error("Send() of an event with no source = nil")
	}
	if n := sink.requests(); n != 0 {
		t.Errorf("Send() made %d requests for an invalid event", n)
	}
}

func TestNewErrors(t *testing.T) {
	cases := []struct {
		desc string
		url  string
		opts []Option
	}{
		{"relative URL", "/default/default", nil},
		{"not http", "ftp://x/", nil},
		{"bad URL", "http://[::1", nil},
		{"negative attempts", "http://x/", []Option{WithPolicy(Policy{Attempts: -1})}},
		{"initial over max", "http://x/", []Option{WithPolicy(Policy{Initial: time.Minute})}},
		{"negative reply limit", "http://x/", []Option{WithMaxReply(-1)}},
		{"bad extension name", "http://x/", []Option{WithExtensions(map[string]string{"Bad-Name": "x"})}},
		{"nil client", "http://x/", []Option{WithClient(nil)}},
	}
	for _, c := range cases {
		if _, err := New(c.url, c.opts...); err == nil {
			t.Errorf("%s: New() = nil error", c.desc)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("K_SINK", "")
	if _, err := FromEnv(); !errors.Is(err, ErrNoSink) {
		t.Errorf("FromEnv() with no K_SINK = %v, want ErrNoSink", err)
	}
	sink := testsupport.NewSink(t, nil)
	t.Setenv("K_SINK", sink.URL)
	t.Setenv("K_CE_OVERRIDES", `{"extensions": {"team": "vision"}}`)
	s, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), testEvent(t)); err != nil {
		t.Fatal(err)
	}
	got := sink.OfType("com.example.test")
	if len(got) != 1 || got[0].Extensions()["team"] != "vision" {
		t.Errorf("sink got %v, want one event with team=vision", got)
	}
	t.Setenv("K_CE_OVERRIDES", `{not json`)
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "K_CE_OVERRIDES") {
		t.Errorf("FromEnv() with bad K_CE_OVERRIDES = %v", err)
	}
}

func TestLines(t *testing.T) {
	var buf bytes.Buffer
	l := NewLines(&buf)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := testEvent(t)
			e.SetID(strconv.Itoa(i))
			if err := l.Send(context.Background(), e); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 50 {
		t.Fatalf("%d lines, want 50", len(lines))
	}
	for _, line := range lines {
		var e event.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Errorf("line %q is not a structured event: %v", line, err)
		}
	}
}

// TestSendTLSFailureIsFinal: a certificate the client does not trust will
// not change by itself; it is not retried.
func TestSendTLSFailureIsFinal(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(202)
	}))
	defer srv.Close()
	err := newSender(t, srv.URL, fast).Send(context.Background(), testEvent(t))
	var se *Error
	if !errors.As(err, &se) || se.Attempts != 1 || se.Status != 0 {
		t.Errorf("Send() to an untrusted certificate = %v, want an *Error after 1 attempt", err)
	}
	if err := newSender(t, srv.URL, fast, WithClient(srv.Client())).Send(context.Background(), testEvent(t)); err != nil {
		t.Errorf("Send() with the server's client = %v", err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("the server answered %d requests, want 1", got)
	}
}
