package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
)

func TestLoadRequestSources(t *testing.T) {
	e, err := events.New(context.Background(), "/test", events.ImageFailedData{Job: "job-0123456789abcdef0123", Framework: "timm", Reason: "x", Message: "y"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(e)
	file := filepath.Join(t.TempDir(), "event")
	os.WriteFile(file, b, 0o644)
	got, err := LoadRequest(file, nil)
	if err != nil || got.ID() != e.ID() {
		t.Errorf("from a file: %v, %v", got.ID(), err)
	}
	got, err = LoadRequest("-", strings.NewReader(string(b)))
	if err != nil || got.ID() != e.ID() {
		t.Errorf("from stdin: %v, %v", got.ID(), err)
	}
	t.Setenv("VP_RUN_EVENT", string(b))
	got, err = LoadRequest("/nonexistent", nil)
	if err != nil || got.ID() != e.ID() {
		t.Errorf("from VP_RUN_EVENT: %v, %v", got.ID(), err)
	}
	t.Setenv("VP_RUN_EVENT", "")
	if _, err := LoadRequest(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("a missing file loaded")
	}
	if _, err := LoadRequest("-", strings.NewReader("not json")); err == nil {
		t.Error("garbage loaded")
	}
	// A request that is not a run.started names no run: Run refuses it.
	if _, err := Run(context.Background(), Config{Sink: &Sink{Out: os.Stderr}, Log: zerolog.Nop()}, e); err == nil {
		t.Error("Run accepted an image.failed event")
	}
}

// TestProgressRateLimit feeds metric lines faster than one a second: the
// sink gets at most one event a second, and the last line always.
func TestProgressRateLimit(t *testing.T) {
	var n atomic.Int64
	var last atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		last.Store(r.Header.Get("Ce-Id"))
		w.WriteHeader(202)
	}))
	defer srv.Close()
	digest := "sha256:" + strings.Repeat("a", 64)
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 1, LearningRate: 0.1}
	m := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	req := events.RunStartedData{Job: events.JobRequestedData{ID: events.JobID(digest, m, hp), Dataset: events.DatasetRef{Bucket: "datasets", Prefix: "p/", Digest: digest, Task: "classification", Format: "imagefolder"}, Model: m, Hyperparameters: hp},
		RunID: "r1", Image: "x", Executor: "process", Output: "s3://runs/r1/"}
	in, err := events.New(context.Background(), "/test", req)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{c: Config{Sink: &Sink{URL: srv.URL}, Source: "/vp/agent"}, req: req, in: in, log: zerolog.Nop()}
	p := newProgress(r, 300*time.Millisecond)
	start := time.Now()
	for i := 1; i <= 50; i++ {
		p.line(`{"vp": "metric", "epoch": 1, "step": ` + itoa(i) + `, "loss": 0.5}`)
		time.Sleep(10 * time.Millisecond)
	}
	p.line("plain log line, not a metric")
	p.flush()
	elapsed := time.Since(start)
	max := int64(elapsed/(300*time.Millisecond)) + 2
	if got := n.Load(); got < 2 || got > max {
		t.Errorf("%d run.progress events in %v at one per 300ms, want 2..%d", got, elapsed, max)
	}
	want := events.RunProgressData{RunID: "r1", Epoch: 1, Step: 50}.DeterministicID()
	if last.Load() != want {
		t.Errorf("last event %v, want the step-50 one %s", last.Load(), want)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
