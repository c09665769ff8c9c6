package up

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/testsupport"
)

// benchN reads a count from the environment.
func benchN(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// tinyDataset writes a small ImageFolder whose content is its own (seed).
func tinyDataset(b testing.TB, seed int) string {
	dir := b.TempDir()
	testsupport.MakeImageFolder(b, dir, 2, 8)
	// One file of its own makes each dataset's digest its own.
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(fmt.Sprintf("dataset %d", seed)), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// started waits until the ledger shows the dataset's job started and
// returns when that was seen, the job's status and the dataset's.
func (p *platform) started(b testing.TB, prefix string, poll time.Duration) (time.Time, ledger.JobStatus, ledger.DatasetStatus) {
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ds, err := p.ledger.Dataset(ctx, DatasetsBucket, prefix)
		if err == nil && len(ds.Jobs) == 1 {
			s, err := p.ledger.Job(ctx, ds.Jobs[0])
			if err == nil && s.Started {
				return time.Now(), s, ds
			}
		}
		time.Sleep(poll)
	}
	b.Fatalf("%s: no run started within 2 minutes\n%s", prefix, tail(p.logs.String(), 40))
	return time.Time{}, ledger.JobStatus{}, ledger.DatasetStatus{}
}

func (p *platform) cancelJob(b testing.TB, jobID string) {
	e, err := events.New(context.Background(), "/bench", events.JobCancelledData{Job: jobID, Reason: "measured"})
	if err != nil {
		b.Fatal(err)
	}
	if code, body := postEvent(b, "http://"+p.c.BrokerAddr+"/default/default", e); code != 202 {
		b.Fatalf("cancelling %s: %d %s", jobID, code, body)
	}
}

func at(s ledger.JobStatus, typ events.Type) time.Time {
	for _, e := range s.Timeline {
		if e.Type == string(typ) {
			return e.Time
		}
	}
	return time.Time{}
}

func pct(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkUploadToRunStarted measures, with the image cached, the time
// from the PUT of a dataset's manifest returning to its run.started in the
// ledger, over VP_BENCH_UPLOADS (20) uploads one after another, with the
// time of each hop from the events' times; then VP_BENCH_BURST (100)
// datasets uploaded at once by 16 clients: each must give exactly one job
// and one run, and the time until all have started is reported. Each run
// is cancelled once measured, so trainings do not take the cores.
func BenchmarkUploadToRunStarted(b *testing.B) {
	testsupport.RequireTorch(b)
	p := startPlatform(b, testConfig(b, b.TempDir()))
	// Warm up: the image built and cached, everything connected.
	p.upload(b, tinyDataset(b, -1), "warm/", manifest("warm", 0, ""))
	_, s, _ := p.started(b, "warm/", 10*time.Millisecond)
	p.cancelJob(b, s.JobID)

	n := benchN("VP_BENCH_UPLOADS", 20)
	var total, intake, trigger, image, runner, record []time.Duration
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = tinyDataset(b, i)
	}
	b.ResetTimer()
	for b.Loop() {
		for i := 0; i < n; i++ {
			prefix := fmt.Sprintf("seq-%d/", i)
			// Data first, manifest last: the clock starts when its PUT returns.
			p.upload(b, dirs[i], prefix, "")
			y := manifest(fmt.Sprintf("seq-%d", i), i, "")
			p.put(b, prefix+"dataset.yaml", []byte(y))
			t0 := time.Now()
			seen, s, ds := p.started(b, prefix, time.Millisecond)
			total = append(total, seen.Sub(t0))
			// The run-recorder records events as they come, not in flow
			// order: wait for the whole chain for the hops.
			for deadline := time.Now().Add(10 * time.Second); at(s, events.ImageBuilt).IsZero() || at(s, events.JobRequested).IsZero(); {
				if time.Now().After(deadline) {
					b.Fatalf("%s: the ledger lacks job.requested or image.built: %+v", prefix, s.Timeline)
				}
				time.Sleep(5 * time.Millisecond)
				var err error
				if s, err = p.ledger.Job(context.Background(), s.JobID); err != nil {
					b.Fatal(err)
				}
			}
			intake = append(intake, ds.Uploaded.Sub(t0))
			trigger = append(trigger, at(s, events.JobRequested).Sub(ds.Uploaded))
			image = append(image, at(s, events.ImageBuilt).Sub(at(s, events.JobRequested)))
			runner = append(runner, at(s, events.RunStarted).Sub(at(s, events.ImageBuilt)))
			record = append(record, seen.Sub(at(s, events.RunStarted)))
			p.cancelJob(b, s.JobID)
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(pct(total, 0.5)), "p50-ms")
	b.ReportMetric(ms(pct(total, 0.99)), "p99-ms")
	for _, h := range []struct {
		name string
		d    []time.Duration
	}{{"manifest PUT → dataset.uploaded (intake)", intake}, {"→ job.requested (job-trigger)", trigger},
		{"→ image.built (image-builder, cache hit)", image}, {"→ run.started (gpu-runner)", runner}, {"→ seen in the ledger (run-recorder)", record}} {
		b.Logf("%-45s p50 %6.1f ms  p99 %6.1f ms", h.name, ms(pct(h.d, 0.5)), ms(pct(h.d, 0.99)))
	}
	b.Logf("%-45s p50 %6.1f ms  p99 %6.1f ms  (%d uploads)", "manifest PUT → run.started in the ledger", ms(pct(total, 0.5)), ms(pct(total, 0.99)), len(total))

	// The burst.
	burst := benchN("VP_BENCH_BURST", 100)
	bdirs := make([]string, burst)
	for i := range bdirs {
		bdirs[i] = tinyDataset(b, 1000+i)
	}
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p.upload(b, bdirs[i], fmt.Sprintf("burst-%d/", i), manifest(fmt.Sprintf("burst-%d", i), 1000+i, ""))
			}
		}()
	}
	for i := 0; i < burst; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	uploaded := time.Since(start)
	var last time.Time
	jobs := map[string]bool{}
	for i := 0; i < burst; i++ {
		seen, s, ds := p.started(b, fmt.Sprintf("burst-%d/", i), 20*time.Millisecond)
		if len(ds.Jobs) != 1 || jobs[s.JobID] {
			b.Errorf("burst-%d: jobs %v", i, ds.Jobs)
		}
		jobs[s.JobID] = true
		if seen.After(last) {
			last = seen
		}
	}
	all, err := p.ledger.Jobs(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	runs := 0
	for _, id := range all {
		if jobs[id] {
			runs++
		}
	}
	b.Logf("burst: %d datasets by 16 clients uploaded in %.1f s; %d jobs and %d runs started, all within %.1f s of the first upload", burst, uploaded.Seconds(), len(jobs), runs, last.Sub(start).Seconds())
	for id := range jobs {
		p.cancelJob(b, id)
	}
}
