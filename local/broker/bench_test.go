package broker

import (
	"bytes"
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
	"syscall"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
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
	// fromIngress: from the knativearrivaltime the broker (or the relay)
	// stamped when the event reached it, to this subscriber.
	fromIngress []time.Duration
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
			ns, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
			if err != nil {
				w.WriteHeader(400)
				return
			}
			d := time.Since(time.Unix(0, ns))
			s.mu.Lock()
			s.lat = append(s.lat, d)
			if v, ok := e.Extensions()[ExtArrivalTime]; ok {
				if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(v)); err == nil {
					s.fromIngress = append(s.fromIngress, time.Since(at))
				}
			}
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
	if err := e.SetData("application/json", map[string]any{"epoch": 1, "step": i, "metrics": map[string]float64{"loss": 0.25, "accuracy": 0.9}}); err != nil {
		panic(err) // numbers always encode
	}
	if stamp {
		e.SetExtension("sentns", strconv.FormatInt(time.Now().UnixNano(), 10))
	}
	return e
}

// sendAll sends n events from benchSenders goroutines as fast as they go.
func sendAll(b *testing.B, c cloudevents.Client, url string, n int) {
	ctx := cloudevents.ContextWithTarget(context.Background(), url)
	fromSenders(b, n, func(i int64) error {
		if res := c.Send(ctx, benchEvent(i, false)); !cloudevents.IsACK(res) {
			return fmt.Errorf("send: %w", res)
		}
		return nil
	})
}

// fromSenders calls send for events 1 to n from benchSenders goroutines;
// a sender stops at its first error.
func fromSenders(b *testing.B, n int, send func(i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range benchSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if err := send(i); err != nil {
					b.Error(err)
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

// cpuMeter measures the CPU time (user and system) this process and a
// helper process (the broker or the relay) spend over a run. With every
// process sharing two cores, the rates follow from these costs: a broker
// reaches half the direct rate only if the harness and the broker together
// spend at most twice what the harness spends per event sent direct.
type cpuMeter struct {
	pid         int // the helper; 0 or this process's pid: none
	self, other time.Duration
}

func startCPU(b *testing.B, pid int) *cpuMeter {
	m := &cpuMeter{pid: pid}
	m.self = selfCPU(b)
	if m.hasOther() {
		m.other = procCPU(b, pid)
	}
	return m
}

func (m *cpuMeter) hasOther() bool { return m.pid != 0 && m.pid != os.Getpid() }

// report adds harness-cpu-us/event and, with a helper, <helper>-cpu-us/event.
func (m *cpuMeter) report(b *testing.B, helper string, events int) {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(events) }
	b.ReportMetric(per(selfCPU(b)-m.self), "harness-cpu-us/event")
	if m.hasOther() {
		b.ReportMetric(per(procCPU(b, m.pid)-m.other), helper+"-cpu-us/event")
	}
}

func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads utime and stime of a process from /proc/PID/stat, in the
// kernel's USER_HZ ticks (100 a second on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14 and stime 15.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * (time.Second / 100)
}

// benchBroker runs the broker in a process of its own, as vp broker runs
// it, so that it has its own heap and collector beside the harness's
// senders and subscribers (the peer brokers were measured the same way).
func benchBroker(b *testing.B, subs []*benchSubscriber) (url string, pid int) {
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
		cmd, base := startHelper(b, "VP_HELPER_DATA="+filepath.Join(dir, "data"), "VP_HELPER_TRIGGERS="+triggers)
		return base + "/default/default", cmd.Process.Pid
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
	return "http://" + ln.Addr().String() + "/default/default", os.Getpid()
}

// benchRelay runs the floor any broker with two HTTP hops stands on: a
// process of its own that forwards each request to the subscriber as it
// comes, on the same HTTP stack as the broker, and answers once the
// subscriber has. It stores nothing, parses no event and checks nothing.
func benchRelay(b *testing.B, s *benchSubscriber) (url string, pid int) {
	cmd, base := startHelper(b, "VP_HELPER_RELAY="+s.URL)
	return base + "/default/default", cmd.Process.Pid
}

// serveRelay is the relay's process (see benchRelay).
func serveRelay(target string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	client := &fasthttp.Client{MaxConnsPerHost: 512, NoDefaultUserAgentHeader: true}
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(target)
		req.Header.SetMethod(http.MethodPost)
		for k, v := range c.Request.Header.All() {
			if len(k) > 3 && strings.EqualFold(string(k[:3]), "ce-") {
				req.Header.SetBytesKV(k, v)
			}
		}
		req.Header.SetContentTypeBytes(c.Request.Header.ContentType())
		req.Header.Set("Ce-"+ExtArrivalTime, time.Now().UTC().Format(time.RFC3339Nano))
		req.SetBodyRaw(c.PostBody())
		if err := client.Do(req, resp); err != nil || resp.StatusCode() >= 300 {
			c.SetStatusCode(http.StatusBadGateway)
			return
		}
		c.SetStatusCode(http.StatusAccepted)
	}}
	fmt.Println("LISTENING", ln.Addr().String())
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// BenchmarkThroughput reports events/s delivered: straight to the
// subscriber (the baseline), through a relay that stores nothing (the floor
// of two HTTP hops), and through the broker to 1 and 8 triggers; and the
// broker's store alone, with no HTTP. Each reports the CPU each event cost
// the harness (senders and subscribers) and the helper process.
func BenchmarkThroughput(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		s := newBenchSubscriber(b)
		throughput(b, s.URL, 0, "", s)
	})
	// The two-hop floor: a relay that stores nothing (see benchRelay).
	b.Run("relay", func(b *testing.B) {
		s := newBenchSubscriber(b)
		url, pid := benchRelay(b, s)
		throughput(b, url, pid, "relay", s)
	})
	// The store alone (see benchStore): what JetStream costs the broker
	// per event, without either HTTP hop.
	b.Run("store-only", benchStore)
	// No trigger: the ingress alone (JetStream keeps nothing no consumer
	// wants), for where the time goes.
	b.Run("broker-ingress-only", func(b *testing.B) {
		url, pid := benchBroker(b, nil)
		throughput(b, url, pid, "broker")
	})
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("broker-%dtriggers", n), func(b *testing.B) {
			subs := make([]*benchSubscriber, n)
			for i := range subs {
				subs[i] = newBenchSubscriber(b)
			}
			url, pid := benchBroker(b, subs)
			accepted, delivered := throughput(b, url, pid, "broker", subs...)
			b.ReportMetric(float64(b.N*n)/delivered.Seconds(), "deliveries/s")
			b.ReportMetric(float64(b.N)/accepted.Seconds(), "ingress-events/s")
		})
	}
}

// throughput sends b.N events to url from benchSenders goroutines and waits
// until every subscriber has them all. It reports the rate delivered (with
// no subscriber, the rate accepted) and the CPU each event cost this
// process and the helper process pid, and returns when the last event was
// accepted and when the last was delivered.
func throughput(b *testing.B, url string, pid int, helper string, subs ...*benchSubscriber) (accepted, delivered time.Duration) {
	c := benchClient(b)
	b.ResetTimer()
	cpu := startCPU(b, pid)
	sendAll(b, c, url, b.N)
	accepted = b.Elapsed()
	for i, s := range subs {
		waitCount(b, fmt.Sprint("subscriber ", i), s.n.Load, int64(b.N))
	}
	delivered = b.Elapsed()
	if len(subs) == 0 {
		b.ReportMetric(float64(b.N)/accepted.Seconds(), "ingress-events/s")
	} else {
		b.ReportMetric(float64(b.N)/delivered.Seconds(), "events/s")
	}
	cpu.report(b, helper, b.N)
	return accepted, delivered
}

// benchStore drives the broker's store in this process with no HTTP on
// either side: benchSenders goroutines store binary-mode events as the
// ingress does (its header mapping and publish), and one trigger's durable
// consumer, configured as the broker configures it, takes and acknowledges
// each.
func benchStore(b *testing.B) {
	ctx := context.Background()
	br, err := New(ctx, WithDataDir(b.TempDir()), WithParallelism(64))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	trs, err := ParseTriggers("store.yaml", []byte("apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: store}\nspec:\n  subscriber: {uri: \"http://127.0.0.1:9/\"}\n"))
	if err != nil {
		b.Fatal(err)
	}
	tc, err := compileTrigger(trs[0], br.o.delivery)
	if err != nil {
		b.Fatal(err)
	}
	stream, err := br.js.Stream(ctx, streamName)
	if err != nil {
		b.Fatal(err)
	}
	d, err := newDispatcher(ctx, br, stream, tc)
	if err != nil {
		b.Fatal(err)
	}
	it, err := d.cons.Messages(jetstream.PullMaxMessages(br.o.parallelism))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	data := benchEvent(0, false).Data()
	b.ResetTimer()
	cpu := startCPU(b, 0)
	consumed := make(chan error, 1)
	go func() {
		for range b.N {
			msg, err := it.Next()
			if err != nil {
				consumed <- err
				return
			}
			if err := msg.Ack(); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	fromSenders(b, b.N, func(i int64) error {
		h := http.Header{
			hdrSpecVersion: {"1.0"},
			hdrID:          {strconv.FormatInt(i, 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)},
			hdrSource:      {"/bench"},
			hdrType:        {"dev.visionplatform.run.progress"},
			hdrContentType: {"application/json"},
		}
		nh, fields, ok := binaryHeaders(h, data)
		if !ok || len(fields) > 0 {
			return fmt.Errorf("binary headers: %v %v", ok, fields)
		}
		if _, err := br.publish(ctx, "default", "default", []*nats.Msg{{Header: nh, Data: data}}); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		return nil
	})
	if b.Failed() {
		it.Stop() // a sender gave up: the consumer would wait for ever
	}
	if err := <-consumed; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	cpu.report(b, "", b.N)
}

// BenchmarkLatency sends b.N events at 1,000 events/s and reports the p50
// and p99 of send-to-subscriber latency, direct, through the relay and
// through the broker, and for the last two also from the ingress (the
// knativearrivaltime it stamps) to the subscriber.
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
		ingress := append([]time.Duration(nil), s.fromIngress...)
		s.mu.Unlock()
		reportQuantiles(b, "", lat)
		if len(ingress) > 0 {
			if len(ingress) != len(lat) {
				b.Fatalf("%d of %d deliveries carry %s", len(ingress), len(lat), ExtArrivalTime)
			}
			reportQuantiles(b, "ingress-", ingress)
		}
	}
	b.Run("direct", func(b *testing.B) {
		s := newBenchSubscriber(b)
		run(b, s, s.URL)
	})
	b.Run("relay", func(b *testing.B) {
		s := newBenchSubscriber(b)
		url, _ := benchRelay(b, s)
		run(b, s, url)
	})
	b.Run("broker", func(b *testing.B) {
		s := newBenchSubscriber(b)
		url, _ := benchBroker(b, []*benchSubscriber{s})
		run(b, s, url)
	})
}

func reportQuantiles(b *testing.B, prefix string, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), prefix+"p50-ms")
	b.ReportMetric(ms(lat[len(lat)*90/100]), prefix+"p90-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), prefix+"p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), prefix+"max-ms")
}

func init() {
	if v := os.Getenv("VP_BENCH_SENDERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			panic("VP_BENCH_SENDERS must be a positive integer, got " + v)
		}
		benchSenders = n
	}
}
