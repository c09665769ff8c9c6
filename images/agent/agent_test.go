package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/vision-platform/vp/internal/dataset"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

type env struct {
	m    *testsupport.MinIO
	sink *testsupport.Sink
	ref  events.DatasetRef
}

// setup starts MinIO, uploads a generated ImageFolder dataset with its
// manifest, and a sink for the agent's events.
func setup(t *testing.T) *env {
	t.Helper()
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	m.Bucket(t, "runs")
	data := t.TempDir()
	testsupport.MakeImageFolder(t, data, 16, 32)
	manifest, digest, err := dataset.ManifestOf(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	m.PutDir(t, data, "datasets", "cats/v1/")
	if _, err := m.Client.PutObject(context.Background(), "datasets", "cats/v1/"+dataset.ManifestName, bytes.NewReader(manifest), int64(len(manifest)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	return &env{m: m, sink: testsupport.NewSink(t, events.Validate), ref: events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: digest, Task: events.TaskClassification, Format: events.FormatImageFolder}}
}

func (e *env) request(t *testing.T, runID, model string, epochs int) event.Event {
	t.Helper()
	hp := events.Hyperparameters{Epochs: epochs, BatchSize: 8, LearningRate: 0.01, ImageSize: 32, Seed: 1}
	mref := events.ModelRef{Framework: "torchvision", Name: model}
	job := events.JobRequestedData{ID: events.JobID(e.ref.Digest, mref, hp), Dataset: e.ref, Model: mref, Hyperparameters: hp}
	ev, err := events.New(context.Background(), "/test/gpu-runner", events.RunStartedData{
		Job: job, RunID: runID, Image: "127.0.0.1:5000/vp/torchvision@sha256:" + strings.Repeat("c", 64),
		Executor: "process", Output: "s3://runs/" + runID + "/",
	})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func (e *env) config(t *testing.T) Config {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Store: objstore.FromMinIO(e.m.Client), Sink: &Sink{URL: e.sink.URL}, WorkDir: t.TempDir(),
		Python: testsupport.Python, Env: []string{"PYTHONPATH=" + filepath.Join(wd, "..", "python"), "OMP_NUM_THREADS=2"},
		Grace: 10 * time.Second, Poll: 200 * time.Millisecond, Attempts: 3, Log: zerolog.Nop(),
	}
}

func objectSHA(t *testing.T, c *minio.Client, uri string) string {
	t.Helper()
	u, err := objstore.ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(context.Background(), u.Bucket, u.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	h := sha256.New()
	if _, err := io.Copy(h, obj); err != nil {
		t.Fatalf("reading %s: %v", uri, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestInt_RunSucceeds(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	e := setup(t)
	req := e.request(t, "run-ok", "resnet18", 2)
	fin, err := Run(context.Background(), e.config(t), req)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if fin.Status != events.StatusSucceeded || fin.Metrics["accuracy"] == 0 && fin.Metrics["val_loss"] == 0 {
		t.Fatalf("Run() = %+v", fin)
	}
	names := map[string]events.Artifact{}
	for _, a := range fin.Artifacts {
		names[a.Name] = a
	}
	for _, n := range []string{"weights/model.pt", "metrics.json", "model_card.json", "checkpoints/last.pt"} {
		a, ok := names[n]
		if !ok {
			t.Errorf("artifacts lack %s: %v", n, fin.Artifacts)
			continue
		}
		if got := objectSHA(t, e.m.Client, a.URI); got != a.SHA256 {
			t.Errorf("%s: object sha256 %s, reported %s", n, got, a.SHA256)
		}
	}
	if !strings.HasSuffix(fin.Log, "/logs/run.log") {
		t.Errorf("log = %q", fin.Log)
	}
	finished := e.sink.OfType(string(events.RunFinished))
	if len(finished) != 1 {
		t.Fatalf("run.finished sent %d times, want 1", len(finished))
	}
	var got events.RunFinishedData
	events.DecodeInto(finished[0], &got)
	if got.Status != events.StatusSucceeded || got.RunID != "run-ok" || len(got.Artifacts) != len(fin.Artifacts) {
		t.Errorf("run.finished = %+v", got)
	}
	progress := e.sink.OfType(string(events.RunProgress))
	if len(progress) < 1 || len(progress) > 2 {
		t.Errorf("run.progress events = %d, want 1 or 2 (two epochs, at most one a second)", len(progress))
	}
	var last events.RunProgressData
	events.DecodeInto(progress[len(progress)-1], &last)
	if last.Epoch != 2 || last.Metrics["loss"] == 0 {
		t.Errorf("last run.progress = %+v; want epoch 2 with a loss", last)
	}
	// The ending belongs to the job and continues the request's trace.
	if finished[0].Extensions()[events.ExtJobID] != got.Job {
		t.Errorf("run.finished jobid = %v, want %s", finished[0].Extensions()[events.ExtJobID], got.Job)
	}
	want := req.Extensions()[events.ExtTraceparent].(string)[3:35]
	if tp := finished[0].Extensions()[events.ExtTraceparent].(string); tp[3:35] != want {
		t.Errorf("run.finished traceparent %s is not in the request's trace %s", tp, want)
	}
}

func TestInt_RunAdapterFails(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	e := setup(t)
	fin, err := Run(context.Background(), e.config(t), e.request(t, "run-bad", "nosuchnet", 1))
	if err != nil {
		t.Fatal(err)
	}
	if fin.Status != events.StatusFailed || fin.Reason != "adapter exited with code 3" || !strings.Contains(fin.LogTail, "torchvision has no model 'nosuchnet'") {
		t.Errorf("Run() = status %q reason %q tail %q", fin.Status, fin.Reason, fin.LogTail)
	}
	if n := len(e.sink.OfType(string(events.RunFinished))); n != 1 {
		t.Errorf("run.finished sent %d times, want 1", n)
	}
}

// The adapter and model the SDK gets are run.started's adapter (the
// catalog's, set by the image-builder), not the job's framework and name.
func TestInt_RunUsesTheCatalogAdapter(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	e := setup(t)
	req := e.request(t, "run-adapter", "resnet18", 1)
	var d events.RunStartedData
	if err := events.DecodeInto(req, &d); err != nil {
		t.Fatal(err)
	}
	d.Adapter = events.AdapterRef{Name: "torchvision", Model: "catalognet"}
	if err := req.SetData("application/json", d); err != nil {
		t.Fatal(err)
	}
	fin, err := Run(context.Background(), e.config(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if fin.Status != events.StatusFailed || !strings.Contains(fin.LogTail, "torchvision has no model 'catalognet'") {
		t.Errorf("Run() = status %q tail %q; want the adapter's model catalognet", fin.Status, fin.LogTail)
	}
}

func TestInt_RunCancelledThenResumed(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	e := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel (as SIGTERM does) once the first checkpoint reached the store.
	go func() {
		for ctx.Err() == nil {
			if _, err := e.m.Client.StatObject(ctx, "runs", "run-pre/checkpoints/last.pt", minio.StatObjectOptions{}); err == nil {
				cancel()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	fin, err := Run(ctx, e.config(t), e.request(t, "run-pre", "resnet18", 200))
	if err != nil {
		t.Fatal(err)
	}
	if fin.Status != events.StatusCancelled {
		t.Fatalf("cancelled run = %+v", fin)
	}
	if n := len(e.sink.OfType(string(events.RunFinished))); n != 1 {
		t.Errorf("run.finished sent %d times, want 1", n)
	}
	// Started again with the same run id, it resumes from the checkpoint.
	cfg := e.config(t)
	req := e.request(t, "run-pre", "resnet18", 200)
	var data events.RunStartedData
	events.DecodeInto(req, &data)
	ck := filepath.Join(t.TempDir(), "last.pt")
	if err := e.m.Client.FGetObject(context.Background(), "runs", "run-pre/checkpoints/last.pt", ck, minio.GetObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(cfg.Python, cfg.Env, "-c", "import torch,sys; print(torch.load(sys.argv[1])['epoch'])", ck)
	if err != nil {
		t.Fatal(err)
	}
	epochDone := strings.TrimSpace(out)
	req2 := e.request(t, "run-pre", "resnet18", atoi(t, epochDone)+1)
	fin, err = Run(context.Background(), cfg, req2)
	if err != nil || fin.Status != events.StatusSucceeded {
		t.Fatalf("resumed run = %+v, %v", fin, err)
	}
	log := readObject(t, e.m.Client, fin.Log)
	if !strings.Contains(log, "vp-agent: resuming from s3://runs/run-pre/checkpoints/last.pt") || !strings.Contains(log, fmt.Sprintf(`"vp": "resume", "epoch": %s`, epochDone)) {
		t.Errorf("resumed run log lacks the resume:\n%s", log)
	}
}

func TestInt_RunStoreUnreachable(t *testing.T) {
	testsupport.Integration(t)
	e := setup(t)
	cfg := e.config(t)
	// A store that is not there: nothing listens on port 1.
	var err error
	if cfg.Store, err = objstore.NewMinIO("127.0.0.1:1", objstore.Credentials{}, false); err != nil {
		t.Fatal(err)
	}
	cfg.Attempts = 2
	fin, err := Run(context.Background(), cfg, e.request(t, "run-nostore", "resnet18", 1))
	if err != nil {
		t.Fatal(err)
	}
	if fin.Status != events.StatusFailed || !strings.Contains(fin.Reason, "unreachable after 2 attempts") {
		t.Errorf("Run() with no store = status %q reason %q", fin.Status, fin.Reason)
	}
	if n := len(e.sink.OfType(string(events.RunFinished))); n != 1 {
		t.Errorf("run.finished sent %d times, want 1", n)
	}
}

func readObject(t *testing.T, c *minio.Client, uri string) string {
	u, err := objstore.ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(context.Background(), u.Bucket, u.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
