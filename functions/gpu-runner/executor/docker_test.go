package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/images/assemble"
	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/publish"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/dockerapi"
	"github.com/vision-platform/vp/internal/dockerapi/dockerapitest"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/local/ociregistry"
)

// nowhere is the address of an engine that does not answer: a socket path
// nothing listens on.
func nowhere(t *testing.T) string {
	return "unix://" + filepath.Join(t.TempDir(), "docker.sock")
}

// pushImage builds the spec named spec of specs with our assembler (the
// layer cache kept across test runs) and pushes it to an embedded registry
// on a loopback port until the test ends; the Docker Engine pulls it from
// there when the executor runs it. It returns the reference by digest and
// removes the image from the engine (api) when the test ends.
func pushImage(t *testing.T, api *dockerapi.Client, specs map[string]*imagespec.Spec, spec string) string {
	t.Helper()
	ctx := context.Background()
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := assemble.OpenCache(filepath.Join(home, ".cache", "vision-platform", "test-images"))
	if err != nil {
		t.Fatal(err)
	}
	bl, err := assemble.New(cache, specs)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := bl.Build(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ociregistry.New(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/vp/" + spec + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := publish.New()
	if err != nil {
		t.Fatal(err)
	}
	res, err := pub.Push(ctx, ref, r.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s built and pushed in %s", res.Reference, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := api.RemoveImage(context.Background(), res.Reference); err != nil && !errors.Is(err, dockerapi.ErrNotFound) {
			t.Logf("removing image %s: %v", res.Reference, err)
		}
	})
	return res.Reference
}

// agentImage builds an image holding a Debian python3 rootfs, the agent,
// the SDK and a small custom model's source tree, and pushes it to an
// embedded registry. It returns the reference by digest.
func agentImage(t *testing.T, api *dockerapi.Client) string {
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
	return pushImage(t, api, map[string]*imagespec.Spec{"agent-test": s}, "agent-test")
}

// standInImage is a scratch image whose entrypoint is the stand-in agent
// (testdata/standin: a static binary of a few MB), pushed to an embedded
// registry: the real engine runs it in seconds.
func standInImage(t *testing.T, api *dockerapi.Client) string {
	t.Helper()
	spec := filepath.Join(t.TempDir(), "standin.yaml")
	if err := os.WriteFile(spec, []byte(fmt.Sprintf(`name: standin
base: {scratch: true}
entrypoint: [/standin]
layers:
  - name: standin
    go: {package: ./functions/gpu-runner/executor/testdata/standin, dest: /standin, dir: %s}
`, testsupport.ModuleRoot(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := imagespec.Load(spec)
	if err != nil {
		t.Fatal(err)
	}
	return pushImage(t, api, map[string]*imagespec.Spec{"standin": s}, "standin")
}

// realEngine is a docker executor of the engine DOCKER_HOST names (the
// default socket when unset) and its client; the test skips, saying why,
// when no engine answers.
func realEngine(t *testing.T) (*DockerExecutor, *dockerapi.Client) {
	t.Helper()
	d := &DockerExecutor{Host: os.Getenv("DOCKER_HOST"), Grace: 5 * time.Second, Log: zerolog.New(zerolog.NewTestWriter(t))}
	api, err := d.engine()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := api.Version(ctx); err != nil {
		t.Skipf("no Docker Engine answers at %s: %v (%s)", api.Host(), err, testsupport.DockerEngineWhere)
	}
	closeAtEnd(t, d)
	return d, api
}

// closeAtEnd closes d when the test ends (before the engine it uses goes).
func closeAtEnd(t *testing.T, d *DockerExecutor) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
}

// removeContainer removes a run's container when the test ends, if it is
// still there.
func removeContainer(t *testing.T, api *dockerapi.Client, runID string) {
	t.Cleanup(func() {
		if err := api.Remove(context.Background(), ContainerName(runID)); err != nil && !errors.Is(err, dockerapi.ErrNotFound) {
			t.Logf("removing run %s's container: %v", runID, err)
		}
	})
}

// finishedOf is the last run.finished of run id the sink got.
func finishedOf(t *testing.T, sink *testsupport.Sink, id string) (f events.RunFinishedData) {
	t.Helper()
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

// TestInt_DockerExecutor runs the real agent in an image the engine pulls
// from an embedded registry, on the host network (the default): a custom
// model trains and its outputs reach MinIO; a cancelled run's agent gets
// SIGTERM and reports the run cancelled.
func TestInt_DockerExecutor(t *testing.T) {
	testsupport.Integration(t)
	d, api := realEngine(t)
	image := agentImage(t, api)
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
	removeContainer(t, api, id)
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
	f := finishedOf(t, sink, id)
	if f.Status != events.StatusSucceeded || f.Metrics["loss"] != 0.5 {
		t.Errorf("run.finished = %+v", f)
	}
	if _, err := m.Client.StatObject(ctx, "runs", id+"/weights/best.pt", minio.StatObjectOptions{}); err != nil {
		t.Errorf("weights not in MinIO: %v", err)
	}
	if c, err := d.container(ctx, id); err != nil || c != nil {
		t.Errorf("the container is there after Wait: %+v (%v)", c, err)
	}

	// Cancel: SIGTERM reaches the agent, which reports the run cancelled.
	id2 := id + "-cancel"
	removeContainer(t, api, id2)
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
	f = finishedOf(t, sink, id2)
	if err != nil || code != 143 || f.Status != events.StatusCancelled {
		t.Errorf("cancelled run: exit %d (%v), run.finished %+v", code, err, f)
	}
	if err := d.Cancel(ctx, id2); err != nil {
		t.Errorf("Cancel of a run removed by Wait = %v, want nil: an ended run is left as it ended", err)
	}
	if err := d.Cancel(ctx, "no-such-run"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Cancel(unknown) = %v, want ErrUnknownRun", err)
	}
}

// TestInt_DockerStandIn drives the real engine with the stand-in agent (a
// scratch image of a few MB): the image named with a registry host the
// engine cannot resolve is pulled from the host's view of it (PullHosts),
// the container joins the network set, with the limits and labels asked
// for; a second launch starts nothing; the logs; a cancel (SIGTERM: exit
// 143), a cancel of an agent that ignores SIGTERM (SIGKILL after the
// grace: 137); an exit code; a container left created by an earlier
// gpu-runner, started on relaunch or removed with its ending on cancel.
func TestInt_DockerStandIn(t *testing.T) {
	testsupport.Integration(t)
	d, api := realEngine(t)
	ctx := context.Background()
	pushed := standInImage(t, api)
	host, rest, _ := strings.Cut(pushed, "/")
	_, port, _ := strings.Cut(host, ":")
	image := "registry:" + port + "/" + rest // as the functions would name it
	network := fmt.Sprintf("vp-test-%d", time.Now().UnixNano())
	if _, err := api.CreateNetwork(ctx, network); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := api.RemoveNetwork(context.Background(), network); err != nil {
			t.Logf("removing network %s: %v", network, err)
		}
	})
	sink := testsupport.NewSink(t, events.Validate)
	d.Network, d.Grace = network, 2*time.Second
	d.PullHosts = map[string]string{"registry:" + port: "127.0.0.1:" + port}
	d.Env = []string{"K_SINK=" + sink.URL}
	if err := api.RemoveImage(ctx, pushed); err != nil && !errors.Is(err, dockerapi.ErrNotFound) {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("stand-%d-", time.Now().UnixNano())
	run := func(id, mode string) Run {
		r := runOf(t, prefix+id, 0)
		r.Image, r.CPU, r.Memory, r.Env = image, "500m", "64Mi", []string{"VP_STANDIN=" + mode}
		removeContainer(t, api, r.ID)
		return r
	}

	a := run("a", "")
	if err := d.Launch(ctx, a); err != nil {
		t.Fatal(err)
	}
	info, err := api.Inspect(ctx, ContainerName(a.ID))
	if err != nil {
		t.Fatal(err)
	}
	got := struct {
		Image, State, RunLabel string
		NanoCPUs, Memory       int64
		OnNetwork              bool
	}{info.Config.Image, info.State.Status, info.Config.Labels[RunLabel], info.HostConfig.NanoCPUs, info.HostConfig.Memory, info.NetworkSettings.Networks[network].IPAddress != ""}
	want := got
	want.Image, want.State, want.RunLabel, want.NanoCPUs, want.Memory, want.OnNetwork = pushed, "running", a.ID, 500_000_000, 64<<20, true
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("run a's container (-want +got):\n%s", diff)
	}
	if err := d.Launch(ctx, a); err != nil {
		t.Fatalf("relaunch: %v", err)
	}
	if again, err := api.Inspect(ctx, ContainerName(a.ID)); err != nil || again.ID != info.ID {
		t.Errorf("a relaunch made another container (%v)", err)
	}
	if runs, err := d.Runs(ctx); err != nil || runs[a.ID] != "running" {
		t.Errorf("Runs() = %v, %v; want %s running", runs, err, a.ID)
	}
	testsupport.Eventually(t, 10*time.Second, "the stand-in's log lines", func() bool {
		logs, err := d.Logs(ctx, a.ID)
		return err == nil && strings.Contains(logs, "stand-in agent of run "+a.ID+"\n") && strings.Contains(logs, "stand-in on stderr\n")
	})
	start := time.Now()
	if err := d.Cancel(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if code, err := d.Wait(ctx, a.ID); code != 143 || err != nil {
		t.Errorf("Wait(cancelled a) = %d, %v; want 143 (SIGTERM)", code, err)
	}
	t.Logf("cancel with SIGTERM took %s", time.Since(start).Round(time.Millisecond))
	if err := d.Cancel(ctx, a.ID); err != nil {
		t.Errorf("Cancel(a, removed by Wait) = %v, want nil: an ended run is left as it ended", err)
	}
	if code, err := d.Wait(ctx, a.ID); code != 143 || err != nil {
		t.Errorf("Wait(a, removed) = %d, %v; want 143, remembered", code, err)
	}

	b := run("b", "ignore-term")
	if err := d.Launch(ctx, b); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 10*time.Second, "b's first log line", func() bool {
		logs, err := d.Logs(ctx, b.ID)
		return err == nil && strings.Contains(logs, "stand-in agent")
	})
	start = time.Now()
	if err := d.Cancel(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < d.Grace {
		t.Errorf("Cancel(b) returned after %s, before the grace period of %s", took, d.Grace)
	}
	logs, err := d.Logs(ctx, b.ID)
	if err != nil || !strings.Contains(logs, "SIGTERM ignored") {
		t.Errorf("b's logs = %q, %v; want SIGTERM ignored", logs, err)
	}
	if code, err := d.Wait(ctx, b.ID); code != 137 || err != nil {
		t.Errorf("Wait(b) = %d, %v; want 137 (SIGKILL after the grace)", code, err)
	}
	if fin := finishedOf(t, sink, b.ID); fin.Status != events.StatusCancelled || fin.Reason != ReasonKilled {
		t.Errorf("b's run.finished = %+v, want cancelled, %q (sent by the executor)", fin, ReasonKilled)
	}

	c := run("c", "exit:3")
	if err := d.Launch(ctx, c); err != nil {
		t.Fatal(err)
	}
	if code, err := d.Wait(ctx, c.ID); code != 3 || err != nil {
		t.Errorf("Wait(c) = %d, %v; want 3", code, err)
	}

	// A container an earlier gpu-runner created and never started.
	leftover := func(r Run) {
		t.Helper()
		ev, err := json.Marshal(r.Event)
		if err != nil {
			t.Fatal(err)
		}
		cfg := dockerapi.ContainerConfig{Image: pushed, Env: append([]string{"VP_RUN_EVENT=" + string(ev), "K_SINK=" + sink.URL}, r.Env...),
			Labels: map[string]string{RunLabel: r.ID}, HostConfig: dockerapi.HostConfig{NetworkMode: network}}
		if _, err := api.Create(ctx, ContainerName(r.ID), cfg); err != nil {
			t.Fatal(err)
		}
	}
	e := run("e", "")
	leftover(e)
	if err := d.Launch(ctx, e); err != nil {
		t.Fatal(err)
	}
	if info, err := api.Inspect(ctx, ContainerName(e.ID)); err != nil || info.State.Status != "running" {
		t.Errorf("the leftover container of e after Launch: %v (%v), want running", info, err)
	}
	testsupport.Eventually(t, 10*time.Second, "e's first log line", func() bool {
		logs, err := d.Logs(ctx, e.ID)
		return err == nil && strings.Contains(logs, "stand-in agent")
	})
	if err := d.Cancel(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if code, err := d.Wait(ctx, e.ID); code != 143 || err != nil {
		t.Errorf("Wait(e) = %d, %v; want 143", code, err)
	}
	f := run("f", "")
	leftover(f)
	if err := d.Cancel(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Inspect(ctx, ContainerName(f.ID)); !errors.Is(err, dockerapi.ErrNotFound) {
		t.Errorf("the leftover container of f after Cancel: %v, want it removed", err)
	}
	if fin := finishedOf(t, sink, f.ID); fin.Status != events.StatusCancelled || fin.Reason != ReasonCancelledQueued {
		t.Errorf("f's run.finished = %+v, want cancelled before it started", fin)
	}
}

// TestDockerCancelAsksTheEngine: whether a run exists is the engine's list
// of containers labelled with it, never an error's text; a cancel sends
// SIGTERM and waits, then SIGKILL after the grace period. The stand-in
// engine answers as an engine would at the moments the test needs (a
// container removed between two calls).
func TestDockerCancelAsksTheEngine(t *testing.T) {
	e := dockerapitest.New(t)
	d := &DockerExecutor{Host: e.Host, Grace: 200 * time.Millisecond}
	ctx := context.Background()
	x := ContainerName("x")
	list := "GET /containers/json"
	sink := testsupport.NewSink(t, events.Validate)
	ev, err := json.Marshal(runOf(t, "x", 0).Event)
	if err != nil {
		t.Fatal(err)
	}
	cfg := dockerapi.ContainerConfig{Image: "img", Labels: map[string]string{RunLabel: "x"}, Env: []string{"VP_RUN_EVENT=" + string(ev), "K_SINK=" + sink.URL}}

	e.Add(x, "running", cfg)
	if err := d.Cancel(ctx, "x"); err != nil {
		t.Errorf("Cancel(running x) = %v", err)
	}
	c, _ := e.Container(x)
	if diff := cmp.Diff([]string{list, "POST /containers/" + c.ID + "/kill", "POST /containers/" + c.ID + "/wait"}, e.Calls()); diff != "" {
		t.Errorf("engine calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"SIGTERM"}, c.Signals); diff != "" || c.ExitCode != 143 {
		t.Errorf("signals (-want +got):\n%s; exit code %d, want 143", diff, c.ExitCode)
	}
	for _, r := range e.Requests() {
		if r.Path == "/containers/json" && r.Query.Get("filters") != `{"label":["`+RunLabel+`=x"]}` {
			t.Errorf("list filters = %s, want the run's label", r.Query.Get("filters"))
		}
	}

	e.Reset()
	if err := d.Cancel(ctx, "x"); err != nil {
		t.Errorf("Cancel(x, ended) = %v, want nil: stopping an ended container does nothing", err)
	}
	if diff := cmp.Diff([]string{list}, e.Calls()); diff != "" {
		t.Errorf("engine calls (-want +got):\n%s", diff)
	}

	e.Remove(x)
	e.Reset()
	if err := d.Cancel(ctx, "x"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Cancel(x without container) = %v, want ErrUnknownRun", err)
	}
	if _, err := d.Wait(ctx, "x"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Wait(x without container) = %v, want ErrUnknownRun", err)
	}
	if _, err := d.Logs(ctx, "x"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Logs(x without container) = %v, want ErrUnknownRun", err)
	}

	// Removed between the list and the kill (Wait removes it).
	e.Add(x, "running", cfg)
	e.Before = func(r dockerapitest.Request) {
		if strings.HasSuffix(r.Path, "/kill") {
			e.Remove(x)
		}
	}
	if err := d.Cancel(ctx, "x"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Cancel(x removed meanwhile) = %v, want ErrUnknownRun", err)
	}
	e.Before = nil

	if n := len(sink.OfType(string(events.RunFinished))); n != 0 {
		t.Errorf("the executor sent %d run.finished for runs whose agent stopped on SIGTERM, want none (the agent reports)", n)
	}

	// An agent that ignores SIGTERM is killed after the grace period, and
	// the executor sends its ending.
	e.Add(x, "running", cfg)
	e.IgnoreTERM = true
	start := time.Now()
	if err := d.Cancel(ctx, "x"); err != nil {
		t.Errorf("Cancel(x ignoring SIGTERM) = %v", err)
	}
	c, _ = e.Container(x)
	if diff := cmp.Diff([]string{"SIGTERM", "SIGKILL"}, c.Signals); diff != "" || c.ExitCode != 137 || time.Since(start) < d.Grace {
		t.Errorf("signals (-want +got):\n%s; exit code %d (want 137) after %s (want the grace, %s)", diff, c.ExitCode, time.Since(start), d.Grace)
	}
	if fin := finishedOf(t, sink, "x"); fin.Status != events.StatusCancelled || fin.Reason != ReasonKilled {
		t.Errorf("run.finished of the killed run = %+v, want cancelled, %q", fin, ReasonKilled)
	}
	if code, err := d.Wait(ctx, "x"); code != 137 || err != nil {
		t.Errorf("Wait(x) = %d, %v; want 137", code, err)
	}
	if _, ok := e.Container(x); ok {
		t.Error("the container is there after Wait")
	}

	down := &DockerExecutor{Host: nowhere(t)}
	err = down.Cancel(ctx, "x")
	if err == nil || errors.Is(err, ErrUnknownRun) || !strings.Contains(err.Error(), "asking the Docker Engine") {
		t.Errorf("Cancel(x) with the engine down = %v, want an error saying the engine did not answer", err)
	}
	if down.Available(ctx) {
		t.Error("Available() with the engine down")
	}
	if d.Available(ctx) != true {
		t.Error("Available() = false with the stand-in engine up")
	}
}

// TestDockerLaunchAsksTheEngine: the container a launch creates (the
// request body the engine gets), the pull of an image the engine lacks
// under the host PullHosts maps, a pull that fails in its stream, a start
// that fails (the container removed), a redelivered launch, and a
// container left created by an earlier gpu-runner.
func TestDockerLaunchAsksTheEngine(t *testing.T) {
	e := dockerapitest.New(t)
	sink := testsupport.NewSink(t, events.Validate)
	// RemoveAfter -1: no watcher nor sweep asks the engine in between.
	d := &DockerExecutor{Host: e.Host, Env: []string{"VP_S3_ENDPOINT=minio:9000", "K_SINK=" + sink.URL},
		PullHosts: map[string]string{"registry:5000": "127.0.0.1:5000"}, RemoveAfter: -1}
	ctx := context.Background()
	digest := "sha256:" + strings.Repeat("c", 64)
	r := runOf(t, "r", 0)
	r.Image, r.CPU, r.Memory, r.Env = "registry:5000/vp/torchvision-cpu@"+digest, "1500m", "2Gi", []string{"EXTRA=1"}
	pulled := "127.0.0.1:5000/vp/torchvision-cpu@" + digest
	if err := d.Launch(ctx, r); err != nil {
		t.Fatal(err)
	}
	if !e.HasImage(pulled) {
		t.Errorf("the engine has not pulled %s", pulled)
	}
	c, ok := e.Container(ContainerName("r"))
	if !ok || c.State != "running" {
		t.Fatalf("container of r = %+v, %v; want it running", c, ok)
	}
	ev, err := json.Marshal(r.Event)
	if err != nil {
		t.Fatal(err)
	}
	want := dockerapi.ContainerConfig{
		Image:      pulled,
		Env:        []string{"VP_RUN_EVENT=" + string(ev), "VP_S3_ENDPOINT=minio:9000", "K_SINK=" + sink.URL, "EXTRA=1"},
		Labels:     map[string]string{RunLabel: "r"},
		HostConfig: dockerapi.HostConfig{NetworkMode: "host", NanoCPUs: 1_500_000_000, Memory: 2 << 30},
	}
	if diff := cmp.Diff(want, c.Config); diff != "" {
		t.Errorf("create body (-want +got):\n%s", diff)
	}
	for _, req := range e.Requests() {
		if req.Path == "/images/create" && (req.Query.Get("fromImage") != "127.0.0.1:5000/vp/torchvision-cpu" || req.Query.Get("tag") != digest) {
			t.Errorf("pull query = %v, want the host's registry and the digest", req.Query)
		}
	}

	// Redelivered: nothing is created, nothing pulled.
	e.Reset()
	if err := d.Launch(ctx, r); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"GET /containers/json"}, e.Calls()); diff != "" {
		t.Errorf("a redelivered launch asked (-want +got):\n%s", diff)
	}

	// A pull that fails in its stream.
	e.PullError = "manifest unknown: manifest unknown"
	p := runOf(t, "p", 0)
	p.Image = "registry:5000/vp/absent:latest"
	if err := d.Launch(ctx, p); !errors.Is(err, dockerapi.ErrPull) || !strings.Contains(err.Error(), "manifest unknown") {
		t.Errorf("Launch(p, its pull fails) = %v, want ErrPull with the engine's message", err)
	}
	e.PullError = ""

	// A start that fails leaves no container.
	e.StartError = "could not select device driver \"\" with capabilities: [[gpu]]"
	s := runOf(t, "s", 0)
	s.Image = "img"
	if err := d.Launch(ctx, s); err == nil || !strings.Contains(err.Error(), "could not select device driver") {
		t.Errorf("Launch(s, its start fails) = %v, want the engine's error", err)
	}
	if _, ok := e.Container(ContainerName("s")); ok {
		t.Error("the container that did not start is there")
	}
	e.StartError = ""

	// A container an earlier gpu-runner created and never started.
	e.Add(ContainerName("l"), "created", dockerapi.ContainerConfig{Image: "img", Labels: map[string]string{RunLabel: "l"}})
	l := runOf(t, "l", 0)
	l.Image = "img"
	if err := d.Launch(ctx, l); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.Container(ContainerName("l")); c.State != "running" {
		t.Errorf("the leftover container of l is %s after Launch, want running", c.State)
	}

	// Invalid runs.
	for _, c := range []struct {
		desc string
		r    func(r *Run)
	}{
		{"no image", func(r *Run) { r.Image = "" }},
		{"an image that is no reference", func(r *Run) { r.Image = "Not An Image" }},
		{"a cpu that is no quantity", func(r *Run) { r.CPU = "two" }},
		{"a memory that is no quantity", func(r *Run) { r.Memory = "16 GB" }},
	} {
		r := runOf(t, "bad", 0)
		r.Image = "img"
		c.r(&r)
		if err := d.Launch(ctx, r); !errors.Is(err, ErrInvalidRun) {
			t.Errorf("Launch with %s = %v, want ErrInvalidRun", c.desc, err)
		}
	}
}

// TestDockerGivesDistinctGPUs: with two GPU devices, two one-GPU runs get
// device 0 and device 1 (not a count each, which puts both on GPU 0); a
// third waits in the queue and starts on the device the first frees; a
// queued run cancelled sends its run.finished. The host has no GPU, so the
// stand-in engine takes the device requests: what is checked is the
// request body the executor sends, as docker run --gpus '"device=0"'
// sends it.
func TestDockerGivesDistinctGPUs(t *testing.T) {
	e := dockerapitest.New(t)
	e.AddImage("img")
	sink := testsupport.NewSink(t, events.Validate)
	d := &DockerExecutor{Host: e.Host, Devices: []string{"0", "1"}, Poll: 20 * time.Millisecond, Log: zerolog.Nop()}
	closeAtEnd(t, d)
	ctx := context.Background()
	launch := func(id string, gpus int) {
		t.Helper()
		r := runOf(t, id, gpus)
		r.Image, r.Env = "img", []string{"K_SINK=" + sink.URL}
		if err := d.Launch(ctx, r); err != nil {
			t.Fatalf("Launch(%s) = %v", id, err)
		}
	}
	given := func() []string {
		var devs []string
		for _, r := range e.Requests() {
			if r.Path != "/containers/create" {
				continue
			}
			var cfg dockerapi.ContainerConfig
			if err := json.Unmarshal(r.Body, &cfg); err != nil {
				t.Fatal(err)
			}
			for _, dr := range cfg.HostConfig.DeviceRequests {
				if diff := cmp.Diff([][]string{{"gpu"}}, dr.Capabilities); diff != "" || dr.Count != 0 || dr.Driver != "" {
					t.Errorf("device request %+v, want device ids with the gpu capability", dr)
				}
				if got := strings.Join(dr.DeviceIDs, ","); got != cfg.Labels[GPULabel] {
					t.Errorf("devices %s, labelled %s", got, cfg.Labels[GPULabel])
				}
				devs = append(devs, strings.Join(dr.DeviceIDs, ",")+"@"+r.Query.Get("name"))
			}
		}
		return devs
	}
	launch("a", 1)
	launch("b", 1)
	launch("c", 1)
	launch("q", 1)
	if diff := cmp.Diff([]string{"0@vp-run-a", "1@vp-run-b"}, given()); diff != "" {
		t.Fatalf("devices given (-want +got):\n%s", diff)
	}
	if err := d.Cancel(ctx, "q"); err != nil {
		t.Fatalf("Cancel(queued q) = %v", err)
	}
	if got := sink.OfType(string(events.RunFinished)); len(got) != 1 || !strings.Contains(string(got[0].Data()), `"status":"cancelled"`) {
		t.Errorf("cancelling the queued run sent %d run.finished, want one, cancelled", len(got))
	}
	if _, err := d.Wait(ctx, "c"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Wait(queued c) = %v, want ErrUnknownRun", err)
	}
	// a ends: its device is free again, and c gets it.
	e.Exit(ContainerName("a"), 0)
	testsupport.Eventually(t, 10*time.Second, "the queued run to start", func() bool { return len(given()) == 3 })
	if diff := cmp.Diff([]string{"0@vp-run-a", "1@vp-run-b", "0@vp-run-c"}, given()); diff != "" {
		t.Errorf("devices given (-want +got):\n%s", diff)
	}
	big := runOf(t, "big", 3)
	big.Image = "img"
	if err := d.Launch(ctx, big); !errors.Is(err, ErrNoGPUs) {
		t.Errorf("Launch(3 GPUs on a 2-GPU host) = %v, want ErrNoGPUs", err)
	}
}

func TestPullRef(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	d := &DockerExecutor{PullHosts: map[string]string{"registry:5000": "127.0.0.1:5000", "docker.io": "mirror.local"}}
	for _, c := range []struct{ ref, want string }{
		{"registry:5000/vp/torchvision-cpu@" + digest, "127.0.0.1:5000/vp/torchvision-cpu@" + digest},
		{"registry:5000/vp/timm:latest", "127.0.0.1:5000/vp/timm:latest"},
		{"registry:5000/vp/timm:v1@" + digest, "127.0.0.1:5000/vp/timm:v1@" + digest},
		{"registry:5001/vp/timm", "registry:5001/vp/timm"},
		{"127.0.0.1:5000/vp/timm", "127.0.0.1:5000/vp/timm"},
		{"debian:bookworm", "mirror.local/library/debian:bookworm"},
	} {
		if got, err := d.PullRef(c.ref); err != nil || got != c.want {
			t.Errorf("PullRef(%q) = %q, %v; want %q", c.ref, got, err, c.want)
		}
	}
	if _, err := d.PullRef("Not An Image"); !errors.Is(err, ErrInvalidRun) {
		t.Errorf("PullRef(invalid) = %v, want ErrInvalidRun", err)
	}
}

func TestParsePullHosts(t *testing.T) {
	for _, c := range []struct {
		in   string
		want map[string]string // nil: an error
	}{
		{"", map[string]string{}},
		{"registry:5000=127.0.0.1:5000", map[string]string{"registry:5000": "127.0.0.1:5000"}},
		{" registry:5000 = 127.0.0.1:5000 , ghcr.io=mirror:443,", map[string]string{"registry:5000": "127.0.0.1:5000", "ghcr.io": "mirror:443"}},
		{"registry:5000", nil},
		{"=127.0.0.1:5000", nil},
		{"registry:5000=http://127.0.0.1:5000", nil},
	} {
		got, err := ParsePullHosts(c.in)
		if c.want == nil {
			if err == nil {
				t.Errorf("ParsePullHosts(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" || err != nil {
			t.Errorf("ParsePullHosts(%q) (-want +got):\n%s%v", c.in, diff, err)
		}
	}
}

func TestLimits(t *testing.T) {
	for _, c := range []struct {
		cpu, memory string
		nano, mem   int64
		err         bool
	}{
		{"4", "16Gi", 4_000_000_000, 16 << 30, false},
		{"500m", "512Mi", 500_000_000, 512 << 20, false},
		{"1.5", "1G", 1_500_000_000, 1_000_000_000, false},
		{"0.1", "1e9", 100_000_000, 1_000_000_000, false},
		{"", "128974848", 0, 128974848, false},
		{"1n", "1.5Ki", 1, 1536, false},
		{"", "100k", 0, 100_000, false},
		{"two", "", 0, 0, true},
		{"", "1GB", 0, 0, true},
		{"-1", "", 0, 0, true},
		{"", "100Ei", 0, 0, true},
	} {
		r := Run{ID: "r", CPU: c.cpu, Memory: c.memory}
		got, err := limits(r)
		if c.err {
			if !errors.Is(err, ErrInvalidRun) {
				t.Errorf("limits(cpu %q, memory %q) = %+v, %v; want ErrInvalidRun", c.cpu, c.memory, got, err)
			}
			continue
		}
		if err != nil || got.nanoCPUs != c.nano || got.memory != c.mem {
			t.Errorf("limits(cpu %q, memory %q) = %+v, %v; want %d nano CPUs, %d bytes", c.cpu, c.memory, got, err, c.nano, c.mem)
		}
	}
}
