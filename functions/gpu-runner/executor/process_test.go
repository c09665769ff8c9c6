package executor

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/images/agent"
	"github.com/vision-platform/vp/internal/testsupport"
)

// twoGPUs stands in for nvidia-smi on a host with two GPUs: there is no GPU
// on the machines the tests run on.
func twoGPUs(context.Context) ([]string, error) { return []string{"0", "1"}, nil }

// standIn writes a shell script used in place of the agent to test the
// executor's scheduling alone: it records its GPUs and waits for a file.
func standIn(t *testing.T, dir string) string {
	p := filepath.Join(dir, "stand-in-agent")
	os.WriteFile(p, []byte(`#!/bin/sh
# args: --event FILE --workdir DIR
dir=$4
echo "$CUDA_VISIBLE_DEVICES" > "$dir/gpus"
trap 'echo cancelled > "$dir/cancelled"; exit 143' TERM
while [ ! -e "$dir/release" ]; do sleep 0.05; done
`), 0o755)
	return p
}

// runOf is a valid run.started event for id.
func runOf(t *testing.T, id string, gpus int) Run {
	t.Helper()
	digest := "sha256:" + strings.Repeat("d", 64)
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 1, LearningRate: 0.1}
	mref := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	ev, err := events.New(context.Background(), "/test", events.RunStartedData{
		Job: events.JobRequestedData{ID: events.JobID(digest, mref, hp), Dataset: events.DatasetRef{Bucket: "datasets", Prefix: "x/", Digest: digest,
			Task: "classification", Format: "imagefolder"}, Model: mref, Hyperparameters: hp, Resources: events.Resources{GPUs: gpus}},
		RunID: id, Image: "local", Executor: Process, Output: "s3://runs/" + id + "/",
	})
	if err != nil {
		t.Fatal(err)
	}
	return Run{ID: id, Event: ev, GPUs: gpus}
}

func waitFile(t *testing.T, p string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProcessSchedulesGPUsAndQueues(t *testing.T) {
	dir := t.TempDir()
	p, err := NewProcess(context.Background(), standIn(t, dir), dir, twoGPUs, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Slots != 2 {
		t.Fatalf("slots = %d, want one per GPU", p.Slots)
	}
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if err := p.Launch(ctx, runOf(t, id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Launch(ctx, runOf(t, "a", 1)); err != nil {
		t.Fatalf("relaunch of a = %v", err)
	}
	ga, gb := waitFile(t, filepath.Join(dir, "a", "gpus")), waitFile(t, filepath.Join(dir, "b", "gpus"))
	if ga == gb || (ga != "0" && ga != "1") || (gb != "0" && gb != "1") {
		t.Errorf("runs a and b got GPUs %q and %q, want 0 and 1", ga, gb)
	}
	if st, _ := p.Status("c"); st != "queued" {
		t.Errorf("c is %s, want queued while both GPUs are busy", st)
	}
	os.WriteFile(filepath.Join(dir, "a", "release"), nil, 0o644)
	if code, _ := p.Wait(ctx, "a"); code != 0 {
		t.Errorf("a exited %d", code)
	}
	if gc := waitFile(t, filepath.Join(dir, "c", "gpus")); gc != ga {
		t.Errorf("c got GPU %q, want a's freed GPU %q", gc, ga)
	}
	// Cancel: a running run gets SIGTERM; a queued one is dropped.
	p.Launch(ctx, runOf(t, "d", 2))
	if st, _ := p.Status("d"); st != "queued" {
		t.Errorf("d is %s, want queued", st)
	}
	if err := p.Cancel(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if err := p.Cancel(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if code, _ := p.Wait(ctx, "b"); code != 143 || waitFile(t, filepath.Join(dir, "b", "cancelled")) != "cancelled" {
		t.Errorf("cancelled b exited %d", code)
	}
	if code, _ := p.Wait(ctx, "d"); code != 143 {
		t.Errorf("cancelled queued d = %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); err == nil {
		t.Error("cancelled queued run d was started")
	}
	os.WriteFile(filepath.Join(dir, "c", "release"), nil, 0o644)
	p.Wait(ctx, "c")
	if err := p.Launch(ctx, runOf(t, "big", 3)); err == nil {
		t.Error("a run asking for 3 GPUs on a 2-GPU host was accepted")
	}
	if err := p.Launch(ctx, Run{ID: "noevent"}); err == nil {
		t.Error("a run without its run.started event was accepted")
	}
	if err := p.Cancel(ctx, "nope"); err == nil {
		t.Error("cancelling an unknown run succeeded")
	}
}

func TestNvidiaSMIAbsent(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if ids, err := NvidiaSMI(context.Background()); err != nil || len(ids) != 0 {
		t.Errorf("NvidiaSMI() without nvidia-smi = %v, %v; want no GPUs", ids, err)
	}
}

// buildAgent builds vp-agent.
func buildAgent(t testing.TB) string {
	out := filepath.Join(t.TempDir(), "vp-agent")
	cmd := exec.Command("go", "build", "-o", out, "github.com/vision-platform/vp/images/agent/cmd/vp-agent")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building vp-agent: %v\n%s", err, msg)
	}
	return out
}

// TestInt_ProcessRunsRealTraining launches a real run: the real agent, a
// real MinIO, real PyTorch on CPU.
func TestInt_ProcessRunsRealTraining(t *testing.T) {
	testsupport.RequireTorch(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	m.Bucket(t, "runs")
	data := t.TempDir()
	testsupport.MakeImageFolder(t, data, 8, 32)
	manifest, digest, err := agent.WriteManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	m.PutDir(t, data, "datasets", "cats/v1/")
	m.Client.PutObject(context.Background(), "datasets", "cats/v1/manifest.json", bytes.NewReader(manifest), int64(len(manifest)), minio.PutObjectOptions{})
	sink := testsupport.NewSink(t, events.Validate)
	ref := events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: digest, Task: "classification", Format: "imagefolder"}
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 8, LearningRate: 0.01, ImageSize: 32}
	mref := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	ev, err := events.New(context.Background(), "/test", events.RunStartedData{
		Job:   events.JobRequestedData{ID: events.JobID(digest, mref, hp), Dataset: ref, Model: mref, Hyperparameters: hp},
		RunID: "run-proc", Image: "local", Executor: Process, Output: "s3://runs/run-proc/",
	})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	p, err := NewProcess(context.Background(), buildAgent(t), t.TempDir(), NvidiaSMI, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	p.Env = []string{"VP_S3_ENDPOINT=" + m.Endpoint, "VP_S3_ACCESS_KEY=" + testsupport.MinIOUser, "VP_S3_SECRET_KEY=" + testsupport.MinIOPassword,
		"K_SINK=" + sink.URL, "VP_PYTHON=" + testsupport.Python, "PYTHONPATH=" + filepath.Join(wd, "..", "..", "..", "images", "python")}
	if err := p.Launch(context.Background(), Run{ID: "run-proc", Event: ev}); err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait(context.Background(), "run-proc")
	if err != nil || code != 0 {
		log, _ := os.ReadFile(filepath.Join(p.WorkDir, "run-proc", "agent.log"))
		t.Fatalf("agent exited %d (%v)\n%s", code, err, log)
	}
	var finished []string
	for _, e := range sink.OfType(string(events.RunFinished)) {
		var d events.RunFinishedData
		events.DecodeInto(e, &d)
		finished = append(finished, d.Status)
	}
	if len(finished) != 1 || finished[0] != events.StatusSucceeded {
		t.Errorf("run.finished statuses = %v, want one succeeded", finished)
	}
}
