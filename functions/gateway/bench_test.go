package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/functions/gateway"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

// BenchmarkGateway measures, in one run, on a real MinIO: the API's
// latency for the model list, a job (GET /api/v1/jobs/{id}) and a job's
// console page under 50 concurrent clients; then how many Server-Sent
// Event followers the gateway holds, each on a job of its own getting one
// event a second, as the broker delivers them (POST /), stepping up until
// followers miss events or the fan-out's p99 passes a second. The gateway
// runs as vp up serves it (fn.Serve: func-go's handler, its timeouts). The
// clients share the process (and the two cores) with the gateway.
//
//	make bench-gateway   (go test ./functions/gateway -run '^$' -bench BenchmarkGateway -benchtime 1x)
//
// VP_BENCH_FOLLOWERS sets the steps (default 1000,2000,4000);
// VP_BENCH_SECONDS the seconds each step runs (default 10).
func BenchmarkGateway(b *testing.B) {
	m := testsupport.StartMinIO(b)
	m.Bucket(b, "datasets")
	m.Bucket(b, "platform")
	store := objstore.FromMinIO(m.Client)
	sink := testsupport.NewSink(b, nil)
	s, err := sender.New(sink.URL)
	if err != nil {
		b.Fatal(err)
	}
	lim := gateway.DefaultLimits
	lim.MaxStreams = 100000
	f := gateway.New(gateway.WithStore(store), gateway.WithSender(s), gateway.WithLogger(zerolog.Nop()), gateway.WithLimits(lim),
		gateway.WithTokens(gateway.Token{Name: "bench", Scope: gateway.ScopeWrite, Token: writeToken}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn.Serve(ctx, ln, f, nil, nil) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("serving: %v", err)
		}
	})
	url := "http://" + ln.Addr().String()
	testsupport.WaitHTTP(b, url+"/health/readiness", 10*time.Second)
	lg := ledger.New(store, "platform")

	// A job with a timeline and progress, as the pipeline leaves it.
	ref := events.DatasetRef{Bucket: "datasets", Prefix: "cats/", Digest: digestOf("a"), Task: "classification", Format: "imagefolder"}
	j := job(ref, "torchvision/resnet18", 5)
	t0 := time.Now().Add(-time.Hour)
	run := events.RunStartedData{Job: j, RunID: "run-b", Image: "img@" + digestOf("f"), Executor: "process", Output: "s3://runs/run-b/"}
	evs := []events.Payload{j, run}
	for i := 1; i <= 5; i++ {
		evs = append(evs, events.RunProgressData{Job: j.ID, RunID: "run-b", Epoch: i, Step: int64(10 * i), Metrics: map[string]float64{"loss": 1 / float64(i)}, Time: t0.Add(time.Duration(i) * time.Second)})
	}
	evs = append(evs, events.RunFinishedData{Job: j.ID, RunID: "run-b", Status: events.StatusSucceeded, DurationSeconds: 5, Metrics: map[string]float64{"accuracy": 0.9}})
	for i, p := range evs {
		e, err := events.New(context.Background(), "/bench", p, events.WithTime(t0.Add(time.Duration(i)*time.Second)))
		if err != nil {
			b.Fatal(err)
		}
		if err := lg.Record(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}

	// Latency under 50 concurrent clients.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	routes := []struct{ name, path string }{
		{"GET /api/v1/models/list", "/api/v1/models/list"},
		{"GET /api/v1/jobs/{id}", "/api/v1/jobs/" + j.ID},
		{"GET /jobs/{id} (console page)", "/jobs/" + j.ID},
	}
	const clients, perClient = 50, 60
	for _, rt := range routes {
		lat := make([][]time.Duration, clients)
		var wg sync.WaitGroup
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perClient {
					req, _ := http.NewRequest(http.MethodGet, url+rt.path, nil)
					req.Header.Set("Authorization", "Bearer "+writeToken)
					t := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("%s = %d", rt.path, resp.StatusCode)
						return
					}
					lat[c] = append(lat[c], time.Since(t))
				}
			}()
		}
		wg.Wait()
		all := slices.Concat(lat...)
		elapsed := time.Since(start)
		slices.Sort(all)
		b.Logf("%-32s 50 clients: p50 %6.2f ms  p99 %6.2f ms  %6.0f req/s (%d requests)", rt.name,
			ms(pct(all, 50)), ms(pct(all, 99)), float64(len(all))/elapsed.Seconds(), len(all))
	}

	// Followers, one event a second each.
	steps := []int{1000, 2000, 4000}
	if v := os.Getenv("VP_BENCH_FOLLOWERS"); v != "" {
		steps = nil
		for _, s := range strings.Split(v, ",") {
			var n int
			fmt.Sscan(s, &n)
			steps = append(steps, n)
		}
	}
	secs := 10
	if v := os.Getenv("VP_BENCH_SECONDS"); v != "" {
		fmt.Sscan(v, &secs)
	}
	held := 0
	for _, n := range steps {
		ok := followers(b, url, lg, n, secs)
		if !ok {
			break
		}
		held = n
	}
	b.Logf("SSE followers held, one event a second each: %d", held)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// followers opens n streams, each on a job of its own, delivers one event
// a second to each job for secs seconds, and reports whether every
// follower got at least 95% of its events with a fan-out p99 under a
// second.
func followers(b *testing.B, url string, lg *ledger.Ledger, n, secs int) bool {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	deliverer := &http.Client{Transport: tr}
	streams := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	ref := events.DatasetRef{Bucket: "datasets", Prefix: "f/", Digest: digestOf("b"), Task: "classification", Format: "imagefolder"}
	jobs := make([]events.JobRequestedData, n)
	// Each job in the ledger first, as the run-recorder records it.
	rec := make(chan int)
	var rwg sync.WaitGroup
	for range 16 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for i := range rec {
				e, err := events.New(ctx, "/bench", jobs[i])
				if err != nil {
					b.Error(err)
					continue
				}
				if err := lg.Record(ctx, e); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n {
		jobs[i] = job(ref, "torchvision/resnet18", 1000*n+i)
		rec <- i
	}
	close(rec)
	rwg.Wait()
	got := make([]atomic.Int64, n)
	var latMu sync.Mutex
	var lats []time.Duration
	var opened, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/jobs/"+jobs[i].ID+"/events", nil)
			req.Header.Set("Authorization", "Bearer "+writeToken)
			resp, err := streams.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					failed.Add(1)
				}
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
				return
			}
			opened.Add(1)
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 4<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if !strings.HasPrefix(line, "data: ") || !strings.Contains(line, "run.progress") {
					continue
				}
				// The event's time is when it was delivered (below).
				i0 := strings.Index(line, `"time":"`)
				if i0 < 0 {
					continue
				}
				ts := line[i0+8:]
				ts = ts[:strings.IndexByte(ts, '"')]
				if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
					latMu.Lock()
					lats = append(lats, time.Since(t))
					latMu.Unlock()
				}
				got[i].Add(1)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for opened.Load()+failed.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if failed.Load() > 0 || opened.Load() < int64(n) {
		b.Logf("%5d followers: %d opened, %d failed", n, opened.Load(), failed.Load())
		return false
	}
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	// One event a second to each job, spread over the second.
	start := time.Now()
	var sent atomic.Int64
	var pub sync.WaitGroup
	const publishers = 8
	for p := range publishers {
		pub.Add(1)
		go func() {
			defer pub.Done()
			for sec := range secs {
				tick := start.Add(time.Duration(sec) * time.Second)
				for i := p; i < n; i += publishers {
					at := tick.Add(time.Duration(i) * time.Second / time.Duration(n))
					if d := time.Until(at); d > 0 {
						time.Sleep(d)
					}
					e, err := events.New(ctx, "/bench", events.RunProgressData{Job: jobs[i].ID, RunID: "run-" + fmt.Sprint(i), Epoch: sec + 1, Step: int64(sec + 1),
						Metrics: map[string]float64{"loss": 1}, Time: time.Now()})
					if err != nil {
						b.Error(err)
						return
					}
					deliver(b, deliverer, url, e)
					sent.Add(1)
				}
			}
		}()
	}
	pub.Wait()
	time.Sleep(time.Second)
	elapsed := time.Since(start)
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	cancel()
	wg.Wait()
	short := 0
	for i := range got {
		if got[i].Load() < int64(secs)*95/100 {
			short++
		}
	}
	slices.Sort(lats)
	p99 := pct(lats, 99)
	b.Logf("%5d followers: %d events delivered in %.1f s (%.0f/s), %d received; fan-out p50 %.2f ms, p99 %.2f ms; %d followers short of 95%%; heap %d MiB, goroutines %d",
		n, sent.Load(), elapsed.Seconds(), float64(sent.Load())/elapsed.Seconds(), len(lats), ms(pct(lats, 50)), ms(p99), short,
		ms1.HeapInuse>>20, runtime.NumGoroutine())
	return short == 0 && p99 < time.Second
}

// deliver posts e as the broker delivers it (binary mode).
func deliver(b *testing.B, c *http.Client, url string, e event.Event) {
	req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), url+"/", e)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Errorf("delivering = %d", resp.StatusCode)
	}
}
