package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/internal/testsupport"
)

// The attacks of issue #11, each against a real broker.

// dialRaw opens a TCP connection to a broker served by startBroker, closed
// when the test ends (before the broker's own cleanup, which waits for
// connections in use).
func dialRaw(t *testing.T, h *harness) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// answerOf reads what the broker writes on c until it closes it; a
// generous deadline keeps a broker that never answers from hanging the
// test.
func answerOf(t *testing.T, c net.Conn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		t.Fatalf("reading the answer: %v", err)
	}
	return string(b)
}

func writeRaw(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// TestInt_SlowBodiesHoldLittleMemory: connections that declare a 1 MB body
// and trickle it must not make the broker hold a megabyte each, and the
// broker keeps accepting events meanwhile.
func TestInt_SlowBodiesHoldLittleMemory(t *testing.T) {
	testsupport.Integration(t)
	const n, declared = 200, 1_000_000
	h := startBroker(t, "")
	before := heapInUse()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dialRaw(t, h)
		writeRaw(t, conns[i], fmt.Sprintf("POST /default/default HTTP/1.1\r\nHost: broker\r\nContent-Type: application/cloudevents+json\r\nContent-Length: %d\r\n\r\n{", declared))
	}
	mustAccept(t, h.ingress, mkEvent("while-slow", "t"))
	var peak int64
	for range 8 {
		for _, c := range conns {
			writeRaw(t, c, " ")
		}
		peak = max(peak, heapInUse()-before)
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("heap in use grew by %d KiB at most with %d slow bodies of %d bytes declared", peak>>10, n, declared)
	if limit := int64(64 << 20); peak > limit {
		t.Errorf("heap in use grew by %d MiB with %d slow connections, want under %d MiB (they declared %d MB)", peak>>20, n, limit>>20, n*declared/1_000_000)
	}
}

// TestInt_SlowRequestsTimeOut: a client that does not send its whole
// request within the read timeout gets 408 and its connection closed,
// whether it stalls in the headers, at the start of the body, or past the
// part of the body read ahead.
func TestInt_SlowRequestsTimeOut(t *testing.T) {
	testsupport.Integration(t)
	h := startBroker(t, "", WithReadTimeout(300*time.Millisecond))
	head := "POST /default/default HTTP/1.1\r\nHost: broker\r\nContent-Type: application/cloudevents+json\r\n"
	for desc, sent := range map[string]string{
		"headers":         head,
		"body":            head + "Content-Length: 1000\r\n\r\n{",
		"body read ahead": head + "Content-Length: 1000000\r\n\r\n" + strings.Repeat(" ", 64<<10),
	} {
		t.Run(desc, func(t *testing.T) {
			c := dialRaw(t, h)
			writeRaw(t, c, sent)
			if got := answerOf(t, c); !strings.HasPrefix(got, "HTTP/1.1 408 ") {
				t.Errorf("answer to a request stalled in its %s = %q, want 408", desc, got)
			}
		})
	}
	mustAccept(t, h.ingress, mkEvent("after-slow", "t"))
}

// TestInt_ConnectionLimits: connections over the limits are refused, and
// the broker serves again once they are closed.
func TestInt_ConnectionLimits(t *testing.T) {
	testsupport.Integration(t)
	for _, c := range []struct {
		desc string
		opt  Option
		want string
	}{
		{"per client address", WithMaxConnsPerIP(2), "HTTP/1.1 429 "},
		{"in all", WithMaxConns(2), "HTTP/1.1 503 "},
	} {
		t.Run(c.desc, func(t *testing.T) {
			h := startBroker(t, "", c.opt)
			// Two connections held open: one idle, one in the middle of a
			// request.
			first, second := dialRaw(t, h), dialRaw(t, h)
			writeRaw(t, second, "POST /default/default HTTP/1.1\r\nHost: broker\r\nContent-Length: 10\r\n\r\n")
			if got := answerOf(t, dialRaw(t, h)); !strings.HasPrefix(got, c.want) {
				t.Errorf("third connection answered %q, want %s", got, c.want)
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			if err := second.Close(); err != nil {
				t.Fatal(err)
			}
			testsupport.Eventually(t, 10*time.Second, "an event accepted once the connections are closed", func() bool {
				req, err := http.NewRequest(http.MethodPost, h.ingress, strings.NewReader(`{"specversion":"1.0","id":"x","source":"/s","type":"t"}`))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/cloudevents+json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return false // refused while the broker still counts a closed connection
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusAccepted
			})
		})
	}
}

// TestInt_RejectedMetricLabels: requests to made-up paths all count under
// one "unknown" broker, so they cannot grow /metrics.
func TestInt_RejectedMetricLabels(t *testing.T) {
	testsupport.Integration(t)
	h := startBroker(t, "", WithMaxEventBytes(1024))
	big := bytes.Repeat([]byte("x"), 2048)
	send := func(path string, body []byte, want int) {
		t.Helper()
		resp, err := http.Post(h.base+path, "application/cloudevents+json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	const n = 200
	for i := range n {
		send(fmt.Sprintf("/ns-%d/b-%d", i, i), big, http.StatusRequestEntityTooLarge)
		send(fmt.Sprintf("/ns-%d/small-%d", i, i), []byte("{}"), http.StatusNotFound)
	}
	send("/default/default", big, http.StatusRequestEntityTooLarge)
	if got := testutil.CollectAndCount(h.b.m.rejected); got != 3 {
		t.Errorf("vp_broker_events_rejected_total has %d series, want 3 (unknown 413 and 404, default/default 413)", got)
	}
	for _, c := range []struct {
		broker, code string
		want         float64
	}{{"unknown", "413", n}, {"unknown", "404", n}, {"default/default", "413", 1}} {
		if got := testutil.ToFloat64(h.b.m.rejected.WithLabelValues(c.broker, c.code)); got != c.want {
			t.Errorf("rejected{broker=%q,code=%q} = %v, want %v", c.broker, c.code, got, c.want)
		}
	}
}

// TestInt_TriggersDoNotShareConnections: triggers to one slow subscriber
// each keep their parallelism in flight; none fails for want of a
// connection, so with no retries nothing is dead-lettered.
func TestInt_TriggersDoNotShareConnections(t *testing.T) {
	testsupport.Integration(t)
	var inFlight, peak atomic.Int64
	slow := newSink(t, func(_ int64, _ event.Event, w http.ResponseWriter) {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(300 * time.Millisecond)
		inFlight.Add(-1)
		w.WriteHeader(http.StatusOK)
	})
	dead := newSink(t, nil)
	delivery := fmt.Sprintf("  delivery: {retry: 0, deadLetterSink: {uri: %q}}\n", dead.URL)
	names := []string{"a", "b", "c"}
	var trs string
	for _, name := range names {
		trs += trigger(name, slow.URL+"/"+name, delivery)
	}
	const parallelism, events = 8, 24
	h := startBroker(t, trs, WithParallelism(parallelism))
	for i := range events {
		mustAccept(t, h.ingress, mkEvent(fmt.Sprint("p", i), "t"))
	}
	settled := func() float64 {
		var sum float64
		for _, name := range names {
			key := "default/" + name
			sum += testutil.ToFloat64(h.b.m.delivered.WithLabelValues(key)) +
				testutil.ToFloat64(h.b.m.deadLettered.WithLabelValues(key)) +
				testutil.ToFloat64(h.b.m.dropped.WithLabelValues(key, "no_dead_letter_sink")) +
				testutil.ToFloat64(h.b.m.dropped.WithLabelValues(key, "dead_letter_failed"))
		}
		return sum
	}
	testsupport.Eventually(t, 60*time.Second, "every delivery settled", func() bool { return settled() == 3*events })
	if n := len(dead.events()); n != 0 {
		t.Errorf("%d events dead-lettered, want 0", n)
	}
	for _, name := range names {
		if got := testutil.ToFloat64(h.b.m.delivered.WithLabelValues("default/" + name)); got != events {
			t.Errorf("trigger %s delivered %v events, want %d", name, got, events)
		}
	}
	if got := slow.calls.Load(); got != 3*events {
		t.Errorf("subscriber called %d times, want %d", got, 3*events)
	}
	t.Logf("at most %d deliveries in flight at the subscriber", peak.Load())
	if p := peak.Load(); p > 3*parallelism {
		t.Errorf("%d deliveries in flight at once, over the parallelism of %d per trigger", p, parallelism)
	}
}

// TestInt_LargeReplyBody: a 2xx answer whose body is over the limit is a
// delivery (the body discarded with a log line), not a failure; a 5xx with
// such a body is a failure by its status.
func TestInt_LargeReplyBody(t *testing.T) {
	testsupport.Integration(t)
	const limit = 64 << 10
	large := bytes.Repeat([]byte("x"), 4*limit)
	write := func(t *testing.T, w http.ResponseWriter, code int, chunked bool) {
		if !chunked {
			w.Header().Set("Content-Length", fmt.Sprint(len(large)))
		}
		w.WriteHeader(code)
		if chunked {
			w.(http.Flusher).Flush()
		}
		if _, err := w.Write(large); err != nil {
			t.Logf("subscriber: %v (the broker hangs up once it has the status)", err)
		}
	}
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("2xx chunked=%v", chunked), func(t *testing.T) {
			s := newSink(t, func(_ int64, _ event.Event, w http.ResponseWriter) { write(t, w, http.StatusOK, chunked) })
			dead := newSink(t, nil)
			logs := &testsupport.SyncBuffer{}
			h := startBroker(t, trigger("big", s.URL, fmt.Sprintf("  delivery: {retry: 2, backoffDelay: PT0.01S, deadLetterSink: {uri: %q}}\n", dead.URL)),
				WithMaxEventBytes(limit), WithLogger(zerolog.New(logs)))
			mustAccept(t, h.ingress, mkEvent("big-reply", "t"))
			testsupport.Eventually(t, 10*time.Second, "delivery", func() bool {
				return testutil.ToFloat64(h.b.m.delivered.WithLabelValues("default/big")) == 1
			})
			settle()
			if n := s.calls.Load(); n != 1 {
				t.Errorf("subscriber called %d times, want 1", n)
			}
			if n := len(dead.events()); n != 0 {
				t.Errorf("%d dead letters, want 0", n)
			}
			if got := testutil.ToFloat64(h.b.m.replies.WithLabelValues("default/big", "too_large")); got != 1 {
				t.Errorf("too_large replies = %v, want 1", got)
			}
			if !strings.Contains(logs.String(), "reply body over the size limit") {
				t.Errorf("no log line about the discarded body in %s", logs)
			}
		})
	}
	t.Run("5xx", func(t *testing.T) {
		s := newSink(t, func(_ int64, _ event.Event, w http.ResponseWriter) {
			write(t, w, http.StatusInternalServerError, false)
		})
		dead := newSink(t, nil)
		h := startBroker(t, trigger("big", s.URL, fmt.Sprintf("  delivery: {retry: 1, backoffDelay: PT0.01S, deadLetterSink: {uri: %q}}\n", dead.URL)),
			WithMaxEventBytes(limit))
		mustAccept(t, h.ingress, mkEvent("big-failure", "t"))
		testsupport.Eventually(t, 10*time.Second, "dead letter", func() bool { return len(dead.events()) == 1 })
		if n := s.calls.Load(); n != 2 {
			t.Errorf("subscriber called %d times, want 2 (1 + 1 retry)", n)
		}
		if got := fmt.Sprint(dead.events()[0].Extensions()[ExtErrorCode]); got != "500" {
			t.Errorf("%s = %s, want 500", ExtErrorCode, got)
		}
	})
}

// TestInt_OversizedHeaders: headers over the limit get 431, and the answer
// echoes nothing the client sent.
func TestInt_OversizedHeaders(t *testing.T) {
	testsupport.Integration(t)
	h := startBroker(t, "")
	c := dialRaw(t, h)
	const marker = "secret-token-value"
	writeRaw(t, c, "POST /default/default HTTP/1.1\r\nHost: broker\r\nAuthorization: Bearer "+marker+"\r\nCe-Big: "+strings.Repeat("y", DefaultMaxHeaderBytes)+"\r\n\r\n")
	got := answerOf(t, c)
	if !strings.HasPrefix(got, "HTTP/1.1 431 ") {
		t.Errorf("answer = %.200q, want 431", got)
	}
	if strings.Contains(got, marker) || strings.Contains(got, "yyyy") {
		t.Errorf("answer echoes the request: %.400q", got)
	}
	_, body, ok := strings.Cut(got, "\r\n\r\n")
	var eb ErrorBody
	if !ok || json.Unmarshal([]byte(body), &eb) != nil || eb.Error == "" {
		t.Errorf("answer body %q is not an ErrorBody", body)
	}
}

// TestInt_UnstorableAttributes: attributes the broker could not deliver
// unchanged are refused with 400 naming them, in every mode.
func TestInt_UnstorableAttributes(t *testing.T) {
	testsupport.Integration(t)
	s := newSink(t, nil)
	h := startBroker(t, trigger("all", s.URL, ""))
	type request struct {
		hdr  map[string]string
		body string
	}
	binary := func(k, v string) request {
		hdr := map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "b", "Ce-Source": "/s", "Ce-Type": "t", "Content-Type": "application/json", k: v}
		return request{hdr, "{}"}
	}
	structured := func(id, typ, extra string) request {
		return request{map[string]string{"Content-Type": "application/cloudevents+json"},
			`{"specversion":"1.0","id":"` + id + `","source":"/s","type":"` + typ + `"` + extra + `}`}
	}
	for _, c := range []struct {
		desc string
		request
		want []string
	}{
		{"binary time", binary("Ce-Time", "yesterday"), []string{"time"}},
		{"binary invalid UTF-8", binary("Ce-Subject", "a\xffb"), []string{"subject"}},
		{"binary extension invalid UTF-8", binary("Ce-Team", "\xc3"), []string{"team"}},
		{"structured CR LF in id", structured(`a\r\nb`, "t", ""), []string{"id"}},
		{"structured invalid UTF-8", structured("x", "t\xff", ""), []string{"type"}},
		{"structured time", structured("x", "t", `,"time":"yesterday"`), []string{"time"}},
		{"batch time", request{map[string]string{"Content-Type": batchMediaType},
			`[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","id":"b","source":"/s","type":"t","time":"yesterday"}]`}, []string{"[1].time"}},
	} {
		t.Run(c.desc, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, h.ingress, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range c.hdr {
				req.Header[k] = []string{v}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil && resp.StatusCode != http.StatusAccepted {
				t.Fatalf("error body: %v", err)
			}
			var got []string
			for _, f := range eb.Fields {
				got = append(got, f.Field)
			}
			if resp.StatusCode != http.StatusBadRequest || !cmp.Equal(got, c.want) {
				t.Errorf("POST = %d %+v, want 400 naming %v", resp.StatusCode, eb, c.want)
			}
		})
	}
	settle()
	if n := len(s.events()); n != 0 {
		t.Errorf("subscriber got %d events, want none", n)
	}
}
