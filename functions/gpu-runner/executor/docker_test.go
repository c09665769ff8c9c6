package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/images/agent"
	"github.com/vision-platform/vp/images/build"
	"github.com/vision-platform/vp/images/publish"
	"github.com/vision-platform/vp/images/spec"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/local/ociregistry"
)

// agentImage builds, with our assembler, an image holding a Debian python3
// rootfs, the agent, the SDK and a small custom model's source tree, and
// pushes it to an embedded registry, from which the Docker Engine pulls it
// when the executor runs it. It returns the reference by digest.
func agentImage(t *testing.T) string {
	t.Helper()
	root := testsupport.ModuleRoot(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "tinymodel")
	os.MkdirAll(filepath.Join(model, "configs"), 0o755)
	os.WriteFile(filepath.Join(model, "configs", "train.yaml.tmpl"), []byte("epochs: ${epochs}\nsleep: ${sleep}\n"), 0o644)
	os.WriteFile(filepath.Join(model, "train.py"), []byte(`import sys, os, time
cfg = dict(l.split(": ", 1) for l in open(sys.argv[2]).read().splitlines())
n = int(cfg["epochs"])
os.makedirs("/workspace/output/checkpoints", exist_ok=True)
for e in range(1, n + 1):
    time.sleep(float(cfg["sleep"]))
    print(f"epoch {e}/{n} loss={1.0/e:.3f}", flush=True)
    open("/workspace/output/checkpoints/last.pt", "w").write(str(e))
open("/workspace/output/best.pt", "w").write("weights")
`), 0o644)
	b, _ := json.Marshal(map[string]any{
		"template": "configs/train.yaml.tmpl", "config": "train.yaml",
		"command": []string{"/usr/bin/python3", "train.py", "--cfg", "${config}"},
		"weights": []string{"best.pt"},
		"rules":   []map[string]any{{"regex": `epoch (?P<epoch>\d+)/\d+ loss=(?P<loss>[0-9.]+)`}},
	})
	os.WriteFile(filepath.Join(model, "vp-custom.json"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "agent.yaml"), []byte(fmt.Sprintf(`name: agent-test
base: {rootfs: %s}
env: {PYTHONPATH: /opt/vp/site-packages, VP_PYTHON: /usr/bin/python3, VP_WORKDIR: /workspace}
entrypoint: [/opt/vp/bin/vp-agent]
workingDir: /workspace
layers:
  - name: agent
    go: {package: ./images/agent/cmd/vp-agent, dest: /opt/vp/bin/vp-agent, dir: %s}
  - name: sdk
    dir: {src: %s, dest: /opt/vp/site-packages/vp_sdk, exclude: ["**/__pycache__"]}
  - name: model
    dir: {src: tinymodel, dest: /opt/vp/custom/tinymodel}
`, testsupport.Rootfs(t), root, filepath.Join(root, "images", "python", "vp_sdk"))), 0o644)
	s, err := spec.Load(filepath.Join(dir, "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	home, _ := os.UserHomeDir()
	cache, err := build.OpenCache(filepath.Join(home, ".cache", "vision-platform", "test-images"))
	if err != nil {
		t.Fatal(err)
	}
	bl, _ := build.New(cache, map[string]*spec.Spec{"agent-test": s})
	r, err := bl.Build(context.Background(), "agent-test")
	if err != nil {
		t.Fatal(err)
	}
	h, err := ociregistry.New(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/vp/agent-test:latest")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := publish.New()
	res, err := pub.Push(context.Background(), ref, r.Image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", res.Reference).Run() })
	return res.Reference
}

func TestInt_DockerExecutor(t *testing.T) {
	d := &DockerExecutor{Grace: 5 * time.Second, Log: zerolog.New(zerolog.NewTestWriter(t))}
	if !d.Available(context.Background()) {
		t.Fatal("no Docker Engine answers")
	}
	image := agentImage(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	m.Bucket(t, "runs")
	data := t.TempDir()
	os.WriteFile(filepath.Join(data, "a.txt"), []byte("one"), 0o644)
	manifest, digest, _ := agent.WriteManifest(data)
	m.PutDir(t, data, "datasets", "tiny/v1/")
	m.Client.PutObject(context.Background(), "datasets", "tiny/v1/manifest.json", bytes.NewReader(manifest), int64(len(manifest)), minio.PutObjectOptions{})
	sink := testsupport.NewSink(t, events.Validate)
	finishedOf := func(id string) (f events.RunFinishedData) {
		for _, e := range sink.OfType(string(events.RunFinished)) {
			var d events.RunFinishedData
			if events.DecodeInto(e, &d) == nil && d.RunID == id {
				f = d
			}
		}
		return f
	}
	d.Env = []string{"VP_S3_ENDPOINT=" + m.Endpoint, "VP_S3_ACCESS_KEY=" + testsupport.MinIOUser, "VP_S3_SECRET_KEY=" + testsupport.MinIOPassword, "K_SINK=" + sink.URL, "VP_GRACE=3s"}
	mkRun := func(id string, epochs int, sleep string) Run {
		ref := events.DatasetRef{Bucket: "datasets", Prefix: "tiny/v1/", Digest: digest, Task: "classification", Format: "imagefolder"}
		hp := events.Hyperparameters{Epochs: epochs, BatchSize: 1, LearningRate: 0.1, Extra: map[string]any{"sourceDir": "/opt/vp/custom/tinymodel", "sleep": sleep}}
		mref := events.ModelRef{Framework: "custom", Name: "tinymodel"}
		var ev event.Event
		ev, err := events.New(context.Background(), "/test", events.RunStartedData{
			Job:   events.JobRequestedData{ID: events.JobID(digest, mref, hp), Dataset: ref, Model: mref, Hyperparameters: hp},
			RunID: id, Image: image, Executor: Docker, Output: "s3://runs/" + id + "/",
		})
		if err != nil {
			t.Fatal(err)
		}
		return Run{ID: id, Event: ev, Image: image, CPU: "1", Memory: "512Mi"}
	}
	ctx := context.Background()
	id := fmt.Sprintf("dock-%d", time.Now().UnixNano())
	r := mkRun(id, 2, "0")
	defer exec.Command("docker", "rm", "-f", ContainerName(id)).Run()
	if err := d.Launch(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := d.Launch(ctx, r); err != nil {
		t.Fatalf("relaunch: %v", err)
	}
	code, err := d.Wait(ctx, id)
	if err != nil || code != 0 {
		t.Fatalf("container exited %d (%v)", code, err)
	}
	f := finishedOf(id)
	if f.Status != events.StatusSucceeded || f.Metrics["loss"] != 0.5 {
		t.Errorf("run.finished = %+v", f)
	}
	if _, err := m.Client.StatObject(ctx, "runs", id+"/weights/best.pt", minio.StatObjectOptions{}); err != nil {
		t.Errorf("weights not in MinIO: %v", err)
	}
	if _, err := d.docker(ctx, "container", "inspect", ContainerName(id)); err == nil {
		t.Error("the container was not removed after Wait")
	}

	// Cancel: SIGTERM reaches the agent, which reports the run cancelled.
	id2 := id + "-cancel"
	defer exec.Command("docker", "rm", "-f", ContainerName(id2)).Run()
	if err := d.Launch(ctx, mkRun(id2, 1000, "0.2")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := m.Client.StatObject(ctx, "runs", id2+"/checkpoints/last.pt", minio.StatObjectOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := d.Logs(ctx, id2)
			t.Fatalf("no checkpoint from the long run\n%s", logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := d.Cancel(ctx, id2); err != nil {
		t.Fatal(err)
	}
	code, _ = d.Wait(ctx, id2)
	f = finishedOf(id2)
	if code != 143 || f.Status != events.StatusCancelled {
		t.Errorf("cancelled run: exit %d, run.finished %+v", code, f)
	}
	if err := d.Cancel(ctx, "no-such-run"); err == nil || !strings.Contains(err.Error(), "unknown run") {
		t.Errorf("Cancel(unknown) = %v", err)
	}
}
