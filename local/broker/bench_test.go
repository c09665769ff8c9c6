package broker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// The broker benchmarks put the broker beside the baseline it is judged
// against: the same events POSTed straight to the same subscriber with
// sdk-go, in the same run (make bench-broker).

var benchSenders = 16

func benchClient(b *testing.B) cloudevents.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256, IdleConnTimeout: 90 * time.Second}
	c, err := cloudevents.NewClientHTTP(cehttp.WithRoundTripper(tr))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// benchSubscriber counts deliveries and records latency from the sent_ns
// extension the sender stamps.
type benchSubscriber struct {
	*httptest.Server
	n   atomic.Int64
	mu  sync.Mutex
	lat []time.Duration
}

func newBenchSubscriber(b *testing.B) *benchSubscriber {
	s := &benchSubscriber{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		if v, ok := e.Extensions()["sentns"]; ok {
			ns, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64)
			d := time.Since(time.Unix(0, ns))
			s.mu.Lock()
			s.lat = append(s.lat, d)
			s.mu.Unlock()
		}
		s.n.Add(1)
		w.WriteHeader(200)
	}))
	b.Cleanup(s.Close)
	return s
}

func benchEvent(i int64, stamp bool) event.Event {
	e := event.New()
	e.SetID(strconv.FormatInt(i, 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	e.SetSource("/bench")
	e.SetType("dev.visionplatform.run.progress")
	_ = e.SetData("application/json", map[string]any{"epoch": 1, "step": i, "metrics": map[string]float64{"loss": 0.25, "accuracy": 0.9}})
	if stamp {
		e.SetExtension("sentns", strconv.FormatInt(time.Now().UnixNano(), 10))
	}
	return e
}

// sendAll sends n events from benchSenders goroutines as fast as they go.
func sendAll(b *testing.B, c cloudevents.Client, url string, n int) {
	ctx := cloudevents.ContextWithTarget(context.Background(), url)
	var next atomic.Int64
	var wg sync.WaitGroup
	for s := 0; s < benchSenders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if res := c.Send(ctx, benchEvent(i, false)); !cloudevents.IsACK(res) {
					b.Errorf("send: %v", res)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func waitCount(b *testing.B, what string, get func() int64, want int64) {
	deadline := time.Now().Add(2 * time.Minute)
	for get() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d delivered", what, get(), want)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// benchBroker runs the broker in a process of its own, as vp broker runs
// it, so that it has its own heap and collector beside the harness's
// senders and subscribers (the peer brokers were measured the same way).
func benchBroker(b *testing.B, subs []*benchSubscriber) string {
	var y strings.Builder
	for i, s := range subs {
		y.WriteString(fmt.Sprintf("---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t%d}\nspec:\n  subscriber: {uri: %q}\n", i, s.URL))
	}
	if os.Getenv("VP_BENCH_INPROCESS") == "" {
		dir := b.TempDir()
		triggers := filepath.Join(dir, "triggers.yaml")
		if err := os.WriteFile(triggers, []byte(y.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		_, base := startHelper(b, filepath.Join(dir, "data"), triggers)
		return base + "/default/default"
	}
	trs, err := ParseTriggers("bench.yaml", []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	br, err := New(context.Background(), WithDataDir(b.TempDir()), WithTriggers(trs...))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go br.Serve(ctx, ln)
	b.Cleanup(func() { cancel(); br.Close() })
	return "http://" + ln.Addr().String() + "/default/default"
}

// BenchmarkThroughput reports events/s delivered: straight to the
// subscriber (the baseline), and through the broker to 1 and 8 triggers.
func BenchmarkThroughput(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		s := newBenchSubscriber(b)
		c := benchClient(b)
		b.ResetTimer()
		sendAll(b, c, s.URL, b.N)
		waitCount(b, "direct", s.n.Load, int64(b.N))
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	// No trigger: the ingress alone (JetStream keeps nothing no consumer
	// wants), for where the time goes.
	b.Run("broker-ingress-only", func(b *testing.B) {
		url := benchBroker(b, nil)
		c := benchClient(b)
		b.ResetTimer()
		sendAll(b, c, url, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ingress-events/s")
	})
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("broker-%dtriggers", n), func(b *testing.B) {
			subs := make([]*benchSubscriber, n)
			for i := range subs {
				subs[i] = newBenchSubscriber(b)
			}
			url := benchBroker(b, subs)
			c := benchClient(b)
			b.ResetTimer()
			sendAll(b, c, url, b.N)
			ingress := b.Elapsed()
			for i, s := range subs {
				waitCount(b, fmt.Sprint("trigger ", i), s.n.Load, int64(b.N))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64(b.N)/ingress.Seconds(), "ingress-events/s")
		})
	}
}

// BenchmarkLatency sends b.N events at 1,000 events/s and reports the p50
// and p99 of send-to-subscriber latency, direct and through the broker.
func BenchmarkLatency(b *testing.B) {
	run := func(b *testing.B, s *benchSubscriber, url string) {
		c := benchClient(b)
		ctx := cloudevents.ContextWithTarget(context.Background(), url)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var wg sync.WaitGroup
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			<-tick.C
			wg.Add(1)
			go func() {
				defer wg.Done()
				if res := c.Send(ctx, benchEvent(int64(i), true)); !cloudevents.IsACK(res) {
					b.Errorf("send: %v", res)
				}
			}()
		}
		wg.Wait()
		waitCount(b, "latency", s.n.Load, int64(b.N))
		b.StopTimer()
		s.mu.Lock()
		lat := append([]time.Duration(nil), s.lat...)
		s.mu.Unlock()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*90/100].Microseconds())/1000, "p90-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	}
	b.Run("direct", func(b *testing.B) {
		s := newBenchSubscriber(b)
		run(b, s, s.URL)
	})
	b.Run("broker", func(b *testing.B) {
		s := newBenchSubscriber(b)
		run(b, s, benchBroker(b, []*benchSubscriber{s}))
	})
}

func init() {
	if v := os.Getenv("VP_BENCH_SENDERS"); v != "" {
		benchSenders, _ = strconv.Atoi(v)
	}
}
