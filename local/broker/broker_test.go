package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/testsupport"
)

// sink is a real HTTP subscriber that records the events it gets and
// answers with respond (200 and no body when nil).
type sink struct {
	*httptest.Server
	mu      sync.Mutex
	got     []event.Event
	headers []http.Header
	calls   atomic.Int64
	respond func(n int64, e event.Event, w http.ResponseWriter)
}

func newSink(t *testing.T, respond func(n int64, e event.Event, w http.ResponseWriter)) *sink {
	s := &sink{respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			t.Errorf("subscriber got a request that is not a CloudEvent: %v", err)
			w.WriteHeader(400)
			return
		}
		n := s.calls.Add(1)
		s.mu.Lock()
		s.got = append(s.got, *e)
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		if s.respond != nil {
			s.respond(n, *e, w)
			return
		}
		w.WriteHeader(200)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) events() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event.Event(nil), s.got...)
}

func (s *sink) ids() map[string]int {
	out := map[string]int{}
	for _, e := range s.events() {
		out[e.ID()]++
	}
	return out
}

// settle waits a little for anything that should not happen.
func settle() { time.Sleep(300 * time.Millisecond) }

type harness struct {
	b       *Broker
	base    string // http://host:port
	ingress string
}

func startBroker(t *testing.T, triggersYAML string, opts ...Option) *harness {
	return startBrokerWith(t, false, triggersYAML, opts...)
}

// startBrokerWith serves the broker as vp broker does (Serve, fasthttp), or
// through Handler in a net/http server when netHTTP is set.
func startBrokerWith(t *testing.T, netHTTP bool, triggersYAML string, opts ...Option) *harness {
	t.Helper()
	trs, err := ParseTriggers("test.yaml", []byte(triggersYAML))
	if err != nil {
		t.Fatalf("ParseTriggers: %v", err)
	}
	opts = append([]Option{WithDataDir(t.TempDir()), WithTriggers(trs...)}, opts...)
	b, err := New(context.Background(), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if netHTTP {
		srv := httptest.NewServer(b.Handler())
		t.Cleanup(func() { srv.Close(); b.Close() })
		return &harness{b: b, base: srv.URL, ingress: srv.URL + "/default/default"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v", err)
		}
		b.Close()
	})
	base := "http://" + ln.Addr().String()
	return &harness{b: b, base: base, ingress: base + "/default/default"}
}

func trigger(name, uri, extra string) string {
	return fmt.Sprintf(`---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: %s}
spec:
  broker: default
  subscriber: {uri: %q}
%s
`, name, uri, extra)
}

func mkEvent(id, typ string) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/test")
	e.SetType(typ)
	if err := e.SetData("application/json", map[string]string{"id": id}); err != nil {
		panic(err) // a map of strings always encodes
	}
	return e
}

func post(t *testing.T, url string, e event.Event) *http.Response {
	t.Helper()
	req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), url, e)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func mustAccept(t *testing.T, url string, e event.Event) {
	t.Helper()
	if resp := post(t, url, e); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s = %d, want 202", e.ID(), resp.StatusCode)
	}
}

func TestInt_FanOutAndFilters(t *testing.T) {
	testsupport.Integration(t)
	all, uploads, runs := newSink(t, nil), newSink(t, nil), newSink(t, nil)
	h := startBroker(t,
		trigger("all", all.URL, "")+
			trigger("uploads", uploads.URL, "  filter:\n    attributes:\n      type: dev.visionplatform.dataset.uploaded\n")+
			trigger("runs", runs.URL, "  filters:\n  - prefix: {type: dev.visionplatform.run.}\n"))
	types := []string{"dev.visionplatform.dataset.uploaded", "dev.visionplatform.run.started", "dev.visionplatform.run.finished", "com.example.other"}
	for i := 0; i < 40; i++ {
		mustAccept(t, h.ingress, mkEvent(fmt.Sprint("e", i), types[i%4]))
	}
	testsupport.Eventually(t, 10*time.Second, "fan-out", func() bool { return len(all.ids()) == 40 && len(uploads.ids()) == 10 && len(runs.ids()) == 20 })
	settle()
	if n := len(all.events()); n != 40 {
		t.Errorf("catch-all trigger got %d deliveries, want 40", n)
	}
	for _, e := range uploads.events() {
		if e.Type() != types[0] {
			t.Errorf("uploads trigger got %s", e.Type())
		}
	}
	for _, e := range runs.events() {
		if !strings.HasPrefix(e.Type(), "dev.visionplatform.run.") {
			t.Errorf("runs trigger got %s", e.Type())
		}
	}
	// Subscribers see Prefer: reply and the arrival time, not the hop TTL.
	all.mu.Lock()
	hdr, first := all.headers[0], all.got[0]
	all.mu.Unlock()
	if hdr.Get("Prefer") != "reply" {
		t.Errorf("Prefer header = %q, want reply", hdr.Get("Prefer"))
	}
	if _, ok := first.Extensions()[ExtTTL]; ok {
		t.Errorf("subscriber saw %s", ExtTTL)
	}
	if _, ok := first.Extensions()[ExtArrivalTime]; !ok {
		t.Errorf("subscriber did not see %s", ExtArrivalTime)
	}
	if got := testutil.ToFloat64(h.b.m.delivered.WithLabelValues("default/all")); got != 40 {
		t.Errorf("delivered metric = %v, want 40", got)
	}
}

func TestInt_RetryThenSuccess(t *testing.T) {
	testsupport.Integration(t)
	s := newSink(t, func(n int64, _ event.Event, w http.ResponseWriter) {
		codes := []int{503, 429, 404, 200}
		w.WriteHeader(codes[min(int(n)-1, 3)])
	})
	h := startBroker(t, trigger("flaky", s.URL, "  delivery: {retry: 5, backoffPolicy: linear, backoffDelay: PT0.01S}\n"))
	mustAccept(t, h.ingress, mkEvent("r1", "t"))
	testsupport.Eventually(t, 10*time.Second, "success after retries", func() bool {
		return testutil.ToFloat64(h.b.m.delivered.WithLabelValues("default/flaky")) == 1
	})
	settle()
	if n := s.calls.Load(); n != 4 {
		t.Errorf("subscriber called %d times, want 4 (503, 429, 404, then 200)", n)
	}
	if got := testutil.ToFloat64(h.b.m.retried.WithLabelValues("default/flaky")); got != 3 {
		t.Errorf("retried metric = %v, want 3", got)
	}
}

func TestInt_DeadLetter(t *testing.T) {
	testsupport.Integration(t)
	failing := newSink(t, func(_ int64, _ event.Event, w http.ResponseWriter) {
		w.WriteHeader(500)
		if _, err := io.WriteString(w, "boom: the model exploded"); err != nil {
			t.Errorf("subscriber: %v", err)
		}
	})
	dead := newSink(t, nil)
	h := startBroker(t, trigger("doomed", failing.URL, fmt.Sprintf("  delivery: {retry: 2, backoffPolicy: exponential, backoffDelay: PT0.005S, deadLetterSink: {uri: %q}}\n", dead.URL)))
	mustAccept(t, h.ingress, mkEvent("d1", "t"))
	testsupport.Eventually(t, 10*time.Second, "dead letter", func() bool { return len(dead.events()) == 1 })
	settle()
	if n := failing.calls.Load(); n != 3 {
		t.Errorf("subscriber called %d times, want 3 (1 + 2 retries)", n)
	}
	dl := dead.events()[0]
	if dl.ID() != "d1" {
		t.Errorf("dead letter id = %q", dl.ID())
	}
	ext := dl.Extensions()
	if ext[ExtErrorDest] != failing.URL {
		t.Errorf("%s = %v, want %s", ExtErrorDest, ext[ExtErrorDest], failing.URL)
	}
	if fmt.Sprint(ext[ExtErrorCode]) != "500" {
		t.Errorf("%s = %v, want 500", ExtErrorCode, ext[ExtErrorCode])
	}
	data, err := base64.StdEncoding.DecodeString(fmt.Sprint(ext[ExtErrorData]))
	if err != nil || string(data) != "boom: the model exploded" {
		t.Errorf("%s decodes to %q", ExtErrorData, data)
	}
	if got := testutil.ToFloat64(h.b.m.deadLettered.WithLabelValues("default/doomed")); got != 1 {
		t.Errorf("dead-lettered metric = %v, want 1", got)
	}
}

func TestInt_NoRetryOnBadRequest(t *testing.T) {
	testsupport.Integration(t)
	for _, code := range []int{400, 403, 301} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			s := newSink(t, func(_ int64, _ event.Event, w http.ResponseWriter) {
				if code == 301 {
					w.Header().Set("Location", "http://127.0.0.1:1/")
				}
				w.WriteHeader(code)
			})
			dead := newSink(t, nil)
			h := startBroker(t, trigger("strict", s.URL, fmt.Sprintf("  delivery: {retry: 5, backoffDelay: PT0.005S, deadLetterSink: {uri: %q}}\n", dead.URL)))
			mustAccept(t, h.ingress, mkEvent("n1", "t"))
			testsupport.Eventually(t, 10*time.Second, "dead letter", func() bool { return len(dead.events()) == 1 })
			settle()
			if n := s.calls.Load(); n != 1 {
				t.Errorf("subscriber called %d times, want 1 (no retry on %d)", n, code)
			}
			if got := fmt.Sprint(dead.events()[0].Extensions()[ExtErrorCode]); got != fmt.Sprint(code) {
				t.Errorf("%s = %s, want %d", ExtErrorCode, got, code)
			}
		})
	}
}

func TestInt_ConnectionErrorRetriesThenDeadLetters(t *testing.T) {
	testsupport.Integration(t)
	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL
	gone.Close() // nothing listens there now
	dead := newSink(t, nil)
	h := startBroker(t, trigger("nowhere", url, fmt.Sprintf("  delivery: {retry: 2, backoffDelay: PT0.005S, deadLetterSink: {uri: %q}}\n", dead.URL)))
	mustAccept(t, h.ingress, mkEvent("c1", "t"))
	testsupport.Eventually(t, 10*time.Second, "dead letter", func() bool { return len(dead.events()) == 1 })
	if got := testutil.ToFloat64(h.b.m.retried.WithLabelValues("default/nowhere")); got != 2 {
		t.Errorf("retried metric = %v, want 2", got)
	}
	if _, ok := dead.events()[0].Extensions()[ExtErrorCode]; ok {
		t.Errorf("%s set without a response", ExtErrorCode)
	}
}

func replyWith(t *testing.T, typ string) func(int64, event.Event, http.ResponseWriter) {
	return func(_ int64, in event.Event, w http.ResponseWriter) {
		r := mkEvent(in.ID()+"-reply", typ)
		r.SetSource("/replier")
		if err := cehttp.WriteResponseWriter(context.Background(), binding.ToMessage(&r), 200, w); err != nil {
			t.Errorf("writing the reply: %v", err)
		}
	}
}

func TestInt_ReplyIsReingested(t *testing.T) {
	testsupport.Integration(t)
	replier := newSink(t, replyWith(t, "answer"))
	answers := newSink(t, nil)
	h := startBroker(t,
		trigger("ask", replier.URL, "  filter: {attributes: {type: question}}\n")+
			trigger("hear", answers.URL, "  filter: {attributes: {type: answer}}\n"))
	mustAccept(t, h.ingress, mkEvent("q1", "question"))
	testsupport.Eventually(t, 10*time.Second, "reply delivered", func() bool { return len(answers.events()) == 1 })
	if got := answers.events()[0]; got.ID() != "q1-reply" || got.Source() != "/replier" {
		t.Errorf("answer = %s from %s", got.ID(), got.Source())
	}
}

func TestInt_ReplyTTLExhaustion(t *testing.T) {
	testsupport.Integration(t)
	// A subscriber that answers every event with a new one of the same
	// type loops; the hop TTL ends the loop.
	var n atomic.Int64
	loop := newSink(t, func(_ int64, in event.Event, w http.ResponseWriter) {
		r := mkEvent(fmt.Sprint("hop-", n.Add(1)), "loop")
		if err := cehttp.WriteResponseWriter(context.Background(), binding.ToMessage(&r), 200, w); err != nil {
			t.Errorf("writing the reply: %v", err)
		}
	})
	h := startBroker(t, trigger("loop", loop.URL, ""))
	e := mkEvent("start", "loop")
	e.SetExtension(ExtTTL, 5)
	mustAccept(t, h.ingress, e)
	testsupport.Eventually(t, 10*time.Second, "TTL exhausted", func() bool {
		return testutil.ToFloat64(h.b.m.replies.WithLabelValues("default/loop", "ttl_exhausted")) == 1
	})
	settle()
	if got := loop.calls.Load(); got != 5 {
		t.Errorf("looping subscriber called %d times, want 5 (TTL 5)", got)
	}
}

func TestInt_NonEventReplyIgnored(t *testing.T) {
	testsupport.Integration(t)
	s := newSink(t, func(_ int64, _ event.Event, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/plain")
		if _, err := io.WriteString(w, "thanks!"); err != nil {
			t.Errorf("subscriber: %v", err)
		}
	})
	h := startBroker(t, trigger("chatty", s.URL, ""))
	mustAccept(t, h.ingress, mkEvent("x1", "t"))
	testsupport.Eventually(t, 10*time.Second, "ignored reply", func() bool {
		return testutil.ToFloat64(h.b.m.replies.WithLabelValues("default/chatty", "not_an_event")) == 1
	})
	if got := testutil.ToFloat64(h.b.m.delivered.WithLabelValues("default/chatty")); got != 1 {
		t.Errorf("delivered = %v, want 1", got)
	}
}

func TestInt_Ingress(t *testing.T) {
	testsupport.Integration(t)
	t.Run("fasthttp", func(t *testing.T) { testIngress(t, false) })
	t.Run("net/http", func(t *testing.T) { testIngress(t, true) })
}

func testIngress(t *testing.T, netHTTP bool) {
	s := newSink(t, nil)
	h := startBrokerWith(t, netHTTP, trigger("all", s.URL, ""), WithMaxEventBytes(4096))
	do := func(ct string, body []byte, hdr map[string]string, url ...string) (int, ErrorBody) {
		target := h.ingress
		if len(url) > 0 {
			target = url[0]
		}
		req, err := http.NewRequest("POST", target, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ct)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb ErrorBody
		if resp.StatusCode != 202 {
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("error Content-Type = %q", ct)
			}
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
				t.Errorf("error body is not JSON: %v", err)
			}
		}
		return resp.StatusCode, eb
	}
	fieldsOf := func(eb ErrorBody) string {
		var f []string
		for _, x := range eb.Fields {
			f = append(f, x.Field)
		}
		return strings.Join(f, ",")
	}
	// Structured mode.
	code, eb := do("application/cloudevents+json", []byte(`{"specversion":"1.0","id":"s1","source":"/x","type":"t","data":{"a":1}}`), nil)
	if code != 202 {
		t.Errorf("structured: %d %+v", code, eb)
	}
	// Binary mode, bad: no id.
	code, eb = do("application/json", []byte(`{}`), map[string]string{"ce-specversion": "1.0", "ce-source": "/x", "ce-type": "t"})
	if code != 400 || fieldsOf(eb) != "id" {
		t.Errorf("binary without id: %d %+v", code, eb)
	}
	// Not a CloudEvent at all.
	code, eb = do("application/json", []byte(`{}`), nil)
	if code != 400 || fieldsOf(eb) != "specversion" {
		t.Errorf("plain JSON: %d %+v", code, eb)
	}
	// Batch with one bad event is refused whole.
	code, eb = do(batchMediaType, []byte(`[{"specversion":"1.0","id":"b1","source":"/x","type":"t"},{"specversion":"1.0","id":"","source":"/x","type":"t"}]`), nil)
	if code != 400 || fieldsOf(eb) != "[1].id" {
		t.Errorf("bad batch: %d %+v", code, eb)
	}
	// A good batch.
	code, eb = do(batchMediaType, []byte(`[{"specversion":"1.0","id":"b2","source":"/x","type":"t"},{"specversion":"1.0","id":"b3","source":"/x","type":"t"}]`), nil)
	if code != 202 {
		t.Errorf("good batch: %d %+v", code, eb)
	}
	// Too large.
	code, eb = do("application/cloudevents+json", bytes.Repeat([]byte("x"), 5000), nil)
	if code != 413 {
		t.Errorf("oversized: %d %+v, want 413", code, eb)
	}
	// Unknown broker.
	if code, eb = do("application/json", []byte("{}"), nil, h.base+"/default/nope"); code != 404 {
		t.Errorf("unknown broker: %d %+v, want 404", code, eb)
	}
	resp, err := http.Get(h.ingress)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET on the ingress: %d, want 405", resp.StatusCode)
	}
	// Duplicates (same source+id) are stored once.
	mustAccept(t, h.ingress, mkEvent("dup", "t"))
	mustAccept(t, h.ingress, mkEvent("dup", "t"))
	testsupport.Eventually(t, 10*time.Second, "deliveries", func() bool {
		ids := s.ids()
		return ids["s1"] == 1 && ids["b2"] == 1 && ids["b3"] == 1 && ids["dup"] == 1
	})
	settle()
	if ids := s.ids(); len(ids) != 4 || ids["dup"] != 1 || ids["b1"] != 0 {
		t.Errorf("delivered ids = %v, want s1, b2, b3 and dup once each", ids)
	}
	if got := testutil.ToFloat64(h.b.m.duplicates.WithLabelValues("default/default")); got != 1 {
		t.Errorf("duplicates metric = %v, want 1", got)
	}
	// Health and metrics.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(h.base + p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s = %d, %v", p, resp.StatusCode, err)
			continue
		}
		if p == "/metrics" && !bytes.Contains(b, []byte("vp_broker_events_received_total")) {
			t.Errorf("/metrics lacks vp_broker_events_received_total")
		}
	}
}

func TestInt_VocabularyValidation(t *testing.T) {
	testsupport.Integration(t)
	h := startBroker(t, "", WithVocabularyValidation(true))
	e := mkEvent("v1", "dev.visionplatform.job.requested")
	resp := post(t, h.ingress, e)
	if resp.StatusCode != 400 {
		t.Fatalf("invalid job.requested = %d, want 400", resp.StatusCode)
	}
	mustAccept(t, h.ingress, mkEvent("v2", "com.example.free"))
}

// TestInt_EventCheck: a check added to the vocabulary's refuses what it
// names, with a 400 that names the field; events it passes are stored.
func TestInt_EventCheck(t *testing.T) {
	testsupport.Integration(t)
	check := func(e event.Event) []events.FieldError {
		if strings.HasSuffix(e.Type(), "job.cancelled") && e.Subject() != "job-00000000000000000000" {
			return []events.FieldError{{Field: "data.jobId", Reason: "no such job"}}
		}
		return nil
	}
	h := startBroker(t, "", WithVocabularyValidation(true), WithEventCheck(check))
	mk := func(job string) event.Event {
		e, err := events.New(context.Background(), "/test", events.JobCancelledData{Job: job})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	mustAccept(t, h.ingress, mk("job-00000000000000000000"))
	req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), h.ingress, mk("job-11111111111111111111"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"data.jobId"`) {
		t.Errorf("POST an event the check refuses = %d %s, want 400 naming data.jobId", resp.StatusCode, body)
	}
}
