package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
)

// fakeClock is a clock that moves only when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at   time.Time
	f    func()
	done bool // fired or stopped
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.done
		t.done = true
		return was
	}
}

// advance moves the clock on by d and runs every timer then due, earliest
// first, as the real clock would have.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// armed lists when the timers neither fired nor stopped are due, as
// offsets from start.
func (c *fakeClock) armed(start time.Time) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, t := range c.timers {
		if !t.done {
			ds = append(ds, t.at.Sub(start))
		}
	}
	return ds
}

// progressSink is a real HTTP event sink that keeps the run.progress
// events it gets, in order.
type progressSink struct {
	mu  sync.Mutex
	got []events.RunProgressData
	ids []string
}

func newProgressSink(t *testing.T) (*progressSink, string) {
	t.Helper()
	s := &progressSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var d events.RunProgressData
		if err := e.DataAs(&d); err != nil || e.Type() != string(events.RunProgress) {
			http.Error(w, fmt.Sprintf("want a run.progress event, got %s: %v", e.Type(), err), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, d)
		s.ids = append(s.ids, e.ID())
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *progressSink) steps() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var steps []int64
	for _, d := range s.got {
		steps = append(steps, d.Step)
	}
	return steps
}

// testRun is a run as Run makes it, sending to sinkURL and logging to log.
func testRun(t *testing.T, sinkURL string, log *bytes.Buffer) *run {
	t.Helper()
	digest := "sha256:" + strings.Repeat("a", 64)
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 1, LearningRate: 0.1}
	m := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	req := events.RunStartedData{Job: events.JobRequestedData{ID: events.JobID(digest, m, hp), Dataset: events.DatasetRef{Bucket: "datasets", Prefix: "p/", Digest: digest, Task: "classification", Format: "imagefolder"}, Model: m, Hyperparameters: hp},
		RunID: "r1", Image: "x", Executor: "process", Output: "s3://runs/r1/"}
	in, err := events.New(context.Background(), "/test", req)
	if err != nil {
		t.Fatal(err)
	}
	return &run{c: Config{Sink: &Sink{URL: sinkURL}, Source: "/vp/agent"}, req: req, in: in, log: zerolog.New(log)}
}

// TestProgressRateLimit feeds metric lines on a fake clock and checks,
// after each, exactly which run.progress events the sink has and which
// timer is armed: at most one event a second, a line that comes sooner
// waits and a newer one replaces it, and flush sends the last.
func TestProgressRateLimit(t *testing.T) {
	sink, url := newProgressSink(t)
	var log bytes.Buffer
	r := testRun(t, url, &log)
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	clk := &fakeClock{now: start}
	p := newProgress(r, time.Second)
	p.clock = clk
	metric := func(step int) func() {
		return func() {
			p.line(fmt.Sprintf(`{"vp": "metric", "epoch": 1, "step": %d, "time": 0.5, "loss": 0.%d}`, step, step))
		}
	}
	for _, s := range []struct {
		desc      string
		after     time.Duration // clock advance before act
		act       func()
		wantSteps []int64
		wantArmed []time.Duration
	}{
		{"the first line goes at once", 0, metric(1), []int64{1}, nil},
		{"a line 100ms later waits for the second to end", 100 * time.Millisecond, metric(2), []int64{1}, []time.Duration{time.Second}},
		{"a newer line replaces it, on the same timer", 100 * time.Millisecond, metric(3), []int64{1}, []time.Duration{time.Second}},
		{"nothing is sent before the second ends", 799 * time.Millisecond, func() {}, []int64{1}, []time.Duration{time.Second}},
		{"at the second, the latest waiting line goes", time.Millisecond, func() {}, []int64{1, 3}, nil},
		{"a line more than a second after the last send goes at once", 1500 * time.Millisecond, metric(4), []int64{1, 3, 4}, nil},
		{"one 10ms later waits", 10 * time.Millisecond, metric(5), []int64{1, 3, 4}, []time.Duration{3500 * time.Millisecond}},
		{"log output, resume and unknown kinds send nothing", 0, func() {
			p.line("Epoch 1/1: loss 0.5")
			p.line(`{"vp": "resume", "epoch": 1, "step": 2}`)
			p.line(`{"vp": "checkpoint", "path": "last.pt"}`)
		}, []int64{1, 3, 4}, []time.Duration{3500 * time.Millisecond}},
		{"flush sends the waiting line and stops the timer", 0, p.flush, []int64{1, 3, 4, 5}, nil},
		{"nothing fires after flush", 10 * time.Second, func() {}, []int64{1, 3, 4, 5}, nil},
	} {
		clk.advance(s.after)
		s.act()
		p.wg.Wait() // every send started so far has reached the sink
		if diff := cmp.Diff(s.wantSteps, sink.steps()); diff != "" {
			t.Errorf("%s: steps sent (-want +got):\n%s", s.desc, diff)
		}
		if diff := cmp.Diff(s.wantArmed, clk.armed(start)); diff != "" {
			t.Errorf("%s: armed timers (-want +got):\n%s", s.desc, diff)
		}
	}
	d := func(step int64, at time.Duration, loss float64) events.RunProgressData {
		return events.RunProgressData{Job: r.req.Job.ID, RunID: "r1", Epoch: 1, Step: step, Metrics: map[string]float64{"loss": loss}, Time: start.Add(at)}
	}
	want := []events.RunProgressData{d(1, 0, 0.1), d(3, 200*time.Millisecond, 0.3), d(4, 2500*time.Millisecond, 0.4), d(5, 2510*time.Millisecond, 0.5)}
	if diff := cmp.Diff(want, sink.got); diff != "" {
		t.Errorf("run.progress events (-want +got):\n%s", diff)
	}
	var wantIDs []string
	for _, w := range want {
		wantIDs = append(wantIDs, w.DeterministicID())
	}
	if diff := cmp.Diff(wantIDs, sink.ids); diff != "" {
		t.Errorf("event ids (-want +got):\n%s", diff)
	}
}

// TestProgressFinalMetrics: the latest metric line's metrics are the run's
// final metrics until the final line comes; then the final line's are, and
// they are what run.finished takes when the output has no metrics.json.
func TestProgressFinalMetrics(t *testing.T) {
	sink, url := newProgressSink(t)
	var log bytes.Buffer
	r := testRun(t, url, &log)
	p := newProgress(r, time.Hour)
	p.clock = &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	for _, s := range []struct {
		line string
		want map[string]float64
	}{
		{`{"vp": "metric", "epoch": 1, "step": 4, "time": 1.5, "loss": 0.9, "accuracy": 0.5}`, map[string]float64{"loss": 0.9, "accuracy": 0.5}},
		{`{"vp": "metric", "epoch": 2, "step": 8, "time": 3.5, "loss": 0.4, "accuracy": 0.75}`, map[string]float64{"loss": 0.4, "accuracy": 0.75}},
		{`{"vp": "final", "metrics": {"accuracy": 0.8, "val_loss": null}}`, map[string]float64{"accuracy": 0.8}},
		{`{"vp": "metric", "epoch": 3, "step": 12, "time": 5.5, "loss": 0.1}`, map[string]float64{"accuracy": 0.8}},
	} {
		p.line(s.line)
		r.mu.Lock()
		got := r.lastProg
		r.mu.Unlock()
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("after %s: final metrics (-want +got):\n%s", s.line, diff)
		}
	}
	p.flush()
	if diff := cmp.Diff(map[string]float64{"accuracy": 0.8}, r.finalMetrics(t.TempDir())); diff != "" {
		t.Errorf("run.finished metrics without metrics.json (-want +got):\n%s", diff)
	}
	// metrics.json's metrics win; a null (not finite) is left out, not 0.
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "metrics.json"), []byte(`{"accuracy": 0.5, "val_loss": null}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]float64{"accuracy": 0.5}, r.finalMetrics(out)); diff != "" {
		t.Errorf("run.finished metrics from metrics.json (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{4, 12}, sink.steps()); diff != "" {
		t.Errorf("steps sent (-want +got):\n%s", diff)
	}
}

// TestProgressLogsResumeUnknownMalformed: a resume line goes to the run log
// and the agent's log; unknown kinds and malformed lines are logged, naming
// the kind or the field, and nothing is sent.
func TestProgressLogsResumeUnknownMalformed(t *testing.T) {
	sink, url := newProgressSink(t)
	var log bytes.Buffer
	r := testRun(t, url, &log)
	p := newProgress(r, time.Second)
	p.clock = &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	p.line(`{"vp": "resume", "epoch": 2, "step": 80}`)
	p.line(`{"vp": "checkpoint", "path": "last.pt"}`)
	p.line(`{"vp": "metric", "epoch": "two", "step": 81, "loss": 0.5}`)
	p.line(`{"vp": "final", "metrics": {"accuracy": "high"}}`)
	p.flush()
	if got := sink.steps(); len(got) != 0 {
		t.Errorf("sent run.progress for steps %v, want none", got)
	}
	if tail := r.logTail(); tail != "vp-agent: the adapter resumed from its checkpoint after epoch 2 (step 80)" {
		t.Errorf("run log = %q", tail)
	}
	var got []map[string]any
	dec := json.NewDecoder(&log)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("agent log: %v\n%s", err, log.String())
		}
		got = append(got, m)
	}
	want := []map[string]any{
		{"level": "info", "epoch": 2.0, "step": 80.0, "message": "the adapter resumed from its checkpoint"},
		{"level": "warn", "kind": "checkpoint", "message": "ignoring a protocol line of an unknown kind"},
		{"level": "warn", "error": `reading a metric line: epoch is "two", not an integer from 0 to 2147483647`, "message": "ignoring a malformed protocol line"},
		{"level": "warn", "error": `reading a final line: metrics.accuracy is "high", not a number`, "message": "ignoring a malformed protocol line"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("agent log (-want +got):\n%s", diff)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastProg != nil {
		t.Errorf("final metrics = %v, want none from malformed lines", r.lastProg)
	}
}
