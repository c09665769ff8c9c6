package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vision-platform/vp/internal/dataset"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/images/assemble"
	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/publish"
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
	if err := os.MkdirAll(filepath.Join(model, "configs"), 0o755); err != nil {
		t.Fatal(err)
	}
	hooks, err := json.Marshal(map[string]any{
		"template": "configs/train.yaml.tmpl", "config": "train.yaml",
		"command": []string{"/usr/bin/python3", "train.py", "--cfg", "${config}"},
		"weights": []string{"best.pt"},
		"rules":   []map[string]any{{"regex": `epoch (?P<epoch>\d+)/\d+ loss=(?P<loss>[0-9.]+)`}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		filepath.Join(model, "configs", "train.yaml.tmpl"): "epochs: ${epochs}\nsleep: ${sleep}\n",
		filepath.Join(model, "train.py"): `import sys, os, time
cfg = dict(l.split(": ", 1) for l in open(sys.argv[2]).read().splitlines())
n = int(cfg["epochs"])
os.makedirs("/workspace/output/checkpoints", exist_ok=True)
for e in range(1, n + 1):
    time.sleep(float(cfg["sleep"]))
    print(f"epoch {e}/{n} loss={1.0/e:.3f}", flush=True)
    open("/workspace/output/checkpoints/last.pt", "w").write(str(e))
open("/workspace/output/best.pt", "w").write("weights")
`,
		filepath.Join(model, "vp-custom.json"): string(hooks),
		filepath.Join(dir, "agent.yaml"): fmt.Sprintf(`name: agent-test
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
`, testsupport.Rootfs(t), root, filepath.Join(root, "images", "python", "vp_sdk")),
	} {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := imagespec.Load(filepath.Join(dir, "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := assemble.OpenCache(filepath.Join(home, ".cache", "vision-platform", "test-images"))
	if err != nil {
		t.Fatal(err)
	}
	bl, err := assemble.New(cache, map[string]*imagespec.Spec{"agent-test": s})
	if err != nil {
		t.Fatal(err)
	}
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
	pub, err := publish.New()
	if err != nil {
		t.Fatal(err)
	}
	res, err := pub.Push(context.Background(), ref, r.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "rmi", "-f", res.Reference).CombinedOutput(); err != nil {
			t.Logf("removing image %s: %v\n%s", res.Reference, err, out)
		}
	})
	return res.Reference
}

// requireEngine skips the test, saying why, when no Docker Engine answers
// d's docker command (as TestInt_ImagesCLI does).
func requireEngine(t *testing.T, d *DockerExecutor) {
	t.Helper()
	if _, err := d.docker(context.Background(), "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Skipf("no Docker Engine answers: %v", err)
	}
}

// removeContainer removes a run's container when the test ends, if it
// is still there.
func removeContainer(t *testing.T, d *DockerExecutor, runID string) {
	t.Cleanup(func() {
		found, err := d.exists(context.Background(), runID)
		if err != nil {
			t.Logf("looking for run %s's container: %v", runID, err)
			return
		}
		if !found {
			return
		}
		if _, err := d.docker(context.Background(), "rm", "--force", ContainerName(runID)); err != nil {
			t.Logf("removing run %s's container: %v", runID, err)
		}
	})
}

func TestInt_DockerExecutor(t *testing.T) {
	testsupport.Integration(t)
	d := &DockerExecutor{Grace: 5 * time.Second, Log: zerolog.New(zerolog.NewTestWriter(t))}
	requireEngine(t, d)
	image := agentImage(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	m.Bucket(t, "runs")
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "a.txt"), []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest, digest, err := dataset.ManifestOf(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	m.PutDir(t, data, "datasets", "tiny/v1/")
	putManifest(t, m, "datasets", "tiny/v1/manifest.json", manifest)
	sink := testsupport.NewSink(t, events.Validate)
	finishedOf := func(id string) (f events.RunFinishedData) {
		for _, e := range sink.OfType(string(events.RunFinished)) {
			var fin events.RunFinishedData
			if err := events.DecodeInto(e, &fin); err != nil {
				t.Fatal(err)
			}
			if fin.RunID == id {
				f = fin
			}
		}
		return f
	}
	d.Env = []string{"VP_S3_ENDPOINT=" + m.Endpoint, "VP_S3_ACCESS_KEY=" + testsupport.MinIOUser, "VP_S3_SECRET_KEY=" + testsupport.MinIOPassword, "K_SINK=" + sink.URL, "VP_GRACE=3s"}
	mkRun := func(id string, epochs int, sleep string) Run {
		ref := events.DatasetRef{Bucket: "datasets", Prefix: "tiny/v1/", Digest: digest, Task: "classification", Format: "imagefolder"}
		hp := events.Hyperparameters{Epochs: epochs, BatchSize: 1, LearningRate: 0.1, Extra: map[string]any{"sourceDir": "/opt/vp/custom/tinymodel", "sleep": sleep}}
		mref := events.ModelRef{Framework: "custom", Name: "tinymodel"}
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
	removeContainer(t, d, id)
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
	if found, err := d.exists(ctx, id); err != nil || found {
		t.Errorf("the container is there after Wait (%v)", err)
	}

	// Cancel: SIGTERM reaches the agent, which reports the run cancelled.
	id2 := id + "-cancel"
	removeContainer(t, d, id2)
	if err := d.Launch(ctx, mkRun(id2, 1000, "0.2")); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 60*time.Second, "a checkpoint of the long run in MinIO", func() bool {
		_, err := m.Client.StatObject(ctx, "runs", id2+"/checkpoints/last.pt", minio.StatObjectOptions{})
		return err == nil
	})
	if err := d.Cancel(ctx, id2); err != nil {
		t.Fatal(err)
	}
	code, err = d.Wait(ctx, id2)
	f = finishedOf(id2)
	if err != nil || code != 143 || f.Status != events.StatusCancelled {
		t.Errorf("cancelled run: exit %d (%v), run.finished %+v", code, err, f)
	}
	if err := d.Cancel(ctx, id2); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Cancel of a run removed by Wait = %v, want ErrUnknownRun", err)
	}
	if err := d.Cancel(ctx, "no-such-run"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Cancel(unknown) = %v, want ErrUnknownRun", err)
	}
}

// TestDockerCancelAsksTheEngine: without an engine here, a docker command
// of the test's answers as the engine would; whether a run exists is the
// engine's list of containers labelled with it, never an error's text.
func TestDockerCancelAsksTheEngine(t *testing.T) {
	bin := script(t, "docker", `dir=$(dirname "$0")
echo "$*" >> "$dir/calls"
if [ -e "$dir/down" ]; then echo "Cannot connect to the Docker daemon" >&2; exit 1; fi
case "$1 $2" in
"container ls") if [ -e "$dir/ls" ]; then cat "$dir/ls"; fi ;;
"stop --time")
	if [ -e "$dir/stop-fails" ]; then rm -f "$dir/ls"; echo "Error response from daemon: gone" >&2; exit 1; fi ;;
"wait vp-run-x") echo "Error response from daemon: gone" >&2; exit 1 ;;
esac
`)
	dir := filepath.Dir(bin)
	state := func(files ...string) {
		t.Helper()
		for _, f := range []string{"down", "ls", "stop-fails", "calls"} {
			if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
		for _, f := range files {
			content := ""
			if f == "ls" {
				content = "0123abcd\n"
			}
			if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	calls := func() []string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "calls"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	ls := "container ls --all --quiet --no-trunc --filter label=" + RunLabel + "=x"
	stop := "stop --time 5 vp-run-x"
	d := &DockerExecutor{Docker: bin, Grace: 5 * time.Second}
	ctx := context.Background()

	state("ls")
	if err := d.Cancel(ctx, "x"); err != nil {
		t.Errorf("Cancel(running x) = %v", err)
	}
	if diff := cmp.Diff([]string{ls, stop}, calls()); diff != "" {
		t.Errorf("docker calls (-want +got):\n%s", diff)
	}

	state()
	if err := d.Cancel(ctx, "x"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Cancel(x without container) = %v, want ErrUnknownRun", err)
	}
	if diff := cmp.Diff([]string{ls}, calls()); diff != "" {
		t.Errorf("docker calls (-want +got):\n%s", diff)
	}

	state("ls", "stop-fails") // removed between the list and the stop
	if err := d.Cancel(ctx, "x"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Cancel(x removed meanwhile) = %v, want ErrUnknownRun", err)
	}

	state("down")
	var ce *CommandError
	err := d.Cancel(ctx, "x")
	if errors.Is(err, ErrUnknownRun) || !errors.As(err, &ce) || ce.ExitCode != 1 || ce.Args[0] != "container" {
		t.Errorf("Cancel(x) with the engine down = %v, want a *CommandError of docker container ls with exit code 1", err)
	}

	state()
	if _, err := d.Wait(ctx, "x"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Wait(x without container) = %v, want ErrUnknownRun", err)
	}
	state("ls")
	if err := d.Launch(ctx, runOf(t, "x", 0)); err == nil {
		t.Error("Launch without an image succeeded")
	}
	r := runOf(t, "x", 0)
	r.Image = "example/agent"
	if err := d.Launch(ctx, r); err != nil {
		t.Errorf("Launch(x, its container exists) = %v", err)
	}
	if diff := cmp.Diff([]string{ls}, calls()); diff != "" {
		t.Errorf("a redelivered launch ran (-want +got):\n%s", diff)
	}
}

// TestDockerGivesDistinctGPUs: with two GPU devices, two one-GPU runs get
// device 0 and device 1 (not a count each, which puts both on GPU 0); a
// third waits in the queue and starts on the device the first frees; a
// queued run cancelled sends its run.finished. A stand-in docker command
// keeps the engine's view: the GPU labels of the containers it runs.
func TestDockerGivesDistinctGPUs(t *testing.T) {
	bin := script(t, "docker", `dir=$(dirname "$0")
case "$1" in
run)
	echo "$*" >> "$dir/runs"
	while [ $# -gt 0 ]; do
		case "$1" in --label) case "$2" in `+GPULabel+`=*) echo "${2#*=}" >> "$dir/inuse" ;; esac ;; esac
		shift
	done
	echo container-id ;;
container)
	case "$*" in *label=`+GPULabel+`*) [ -e "$dir/inuse" ] && cat "$dir/inuse" ;; esac ;;
esac
exit 0
`)
	dir := filepath.Dir(bin)
	sink := testsupport.NewSink(t, events.Validate)
	d := &DockerExecutor{Docker: bin, Devices: []string{"0", "1"}, Poll: 20 * time.Millisecond, Log: zerolog.Nop()}
	ctx := context.Background()
	launch := func(id string, gpus int) {
		t.Helper()
		r := runOf(t, id, gpus)
		r.Image, r.Env = "img", []string{"K_SINK=" + sink.URL}
		if err := d.Launch(ctx, r); err != nil {
			t.Fatalf("Launch(%s) = %v", id, err)
		}
	}
	runs := func() []string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "runs"))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var devs []string
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if i := strings.Index(line, `--gpus "device=`); i >= 0 {
				devs = append(devs, strings.SplitN(line[i+len(`--gpus "device=`):], `"`, 2)[0]+"@"+strings.Fields(line)[3])
			}
		}
		return devs
	}
	launch("a", 1)
	launch("b", 1)
	launch("c", 1)
	launch("q", 1)
	if diff := cmp.Diff([]string{"0@vp-run-a", "1@vp-run-b"}, runs()); diff != "" {
		t.Fatalf("devices given (-want +got):\n%s", diff)
	}
	if err := d.Cancel(ctx, "q"); err != nil {
		t.Fatalf("Cancel(queued q) = %v", err)
	}
	if got := sink.OfType(string(events.RunFinished)); len(got) != 1 || !strings.Contains(string(got[0].Data()), `"status":"cancelled"`) {
		t.Errorf("cancelling the queued run sent %d run.finished, want one, cancelled", len(got))
	}
	// a ends: its device is free again, and c gets it.
	if err := os.WriteFile(filepath.Join(dir, "inuse"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 10*time.Second, "the queued run to start", func() bool { return len(runs()) == 3 })
	if diff := cmp.Diff([]string{"0@vp-run-a", "1@vp-run-b", "0@vp-run-c"}, runs()); diff != "" {
		t.Errorf("devices given (-want +got):\n%s", diff)
	}
	big := runOf(t, "big", 3)
	big.Image = "img"
	if err := d.Launch(ctx, big); !errors.Is(err, ErrNoGPUs) {
		t.Errorf("Launch(3 GPUs on a 2-GPU host) = %v, want ErrNoGPUs", err)
	}
}
