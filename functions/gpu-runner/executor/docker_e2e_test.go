package executor

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/testsupport"
)

// proxy serves target (a loopback server) on host (an address of this
// host the containers reach) until the test ends, and returns the address
// it listens on. The Host header goes through as the client sent it, so
// MinIO checks the signature the agent made for that address.
func proxy(t *testing.T, host, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(u))
	if err := srv.Listener.Close(); err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String()
}

// TestInt_DockerExecutorEndToEnd is the docker executor as docker-compose
// runs it: the torchvision-cpu framework image (images/frameworks, built
// with our assembler) is pushed to the embedded registry on a loopback
// port and named, as the functions name it, on a registry host the engine
// cannot resolve (registry:PORT); the executor pulls it from the engine's
// view (PullHosts: 127.0.0.1:PORT) and runs it on a network of its own
// (Network, as the compose network), from which the agent reaches MinIO
// and the event sink through the network's gateway address (the host's
// address on that bridge; proxies there forward to the loopback servers).
// A resnet18 trains for real on CPU: run.finished succeeded, the weights
// and metrics.json in MinIO. A second, long run is cancelled once its
// first checkpoint is in MinIO: the agent gets SIGTERM and reports it
// cancelled, and the container stops.
func TestInt_DockerExecutorEndToEnd(t *testing.T) {
	testsupport.Integration(t)
	d, api := realEngine(t)
	ctx := context.Background()
	specs, err := imagespec.LoadDir(filepath.Join(testsupport.ModuleRoot(t), "images", "frameworks"))
	if err != nil {
		t.Fatal(err)
	}
	pushed := pushImage(t, api, specs, "torchvision-cpu")
	host, rest, _ := strings.Cut(pushed, "/")
	_, port, _ := strings.Cut(host, ":")
	image := "registry:" + port + "/" + rest

	network := fmt.Sprintf("vp-e2e-%d", time.Now().UnixNano())
	if _, err := api.CreateNetwork(ctx, network); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := api.RemoveNetwork(context.Background(), network); err != nil {
			t.Logf("removing network %s: %v", network, err)
		}
	})
	gateway, err := api.NetworkGateway(ctx, network)
	if err != nil {
		t.Fatal(err)
	}

	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	m.Bucket(t, "runs")
	data := t.TempDir()
	testsupport.MakeImageFolder(t, data, 8, 32)
	manifest, digest, err := dataset.ManifestOf(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	m.PutDir(t, data, "datasets", "cats/v1/")
	putManifest(t, m, "datasets", "cats/v1/manifest.json", manifest)
	sink := testsupport.NewSink(t, events.Validate)
	s3 := proxy(t, gateway, "http://"+m.Endpoint)
	sinkAt := proxy(t, gateway, sink.URL)

	d.Network, d.Grace = network, 30*time.Second
	d.PullHosts = map[string]string{"registry:" + port: "127.0.0.1:" + port}
	d.Env = []string{"VP_S3_ENDPOINT=" + s3, "VP_S3_ACCESS_KEY=" + testsupport.MinIOUser, "VP_S3_SECRET_KEY=" + testsupport.MinIOPassword,
		"K_SINK=http://" + sinkAt, "VP_GRACE=10s", "OMP_NUM_THREADS=1"}
	stamp := time.Now().UnixNano()
	mkRun := func(id string, epochs int) Run {
		ref := events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: digest, Task: "classification", Format: "imagefolder"}
		hp := events.Hyperparameters{Epochs: epochs, BatchSize: 8, LearningRate: 0.01, ImageSize: 32}
		mref := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
		ev, err := events.New(ctx, "/test", events.RunStartedData{
			Job:   events.JobRequestedData{ID: events.JobID(digest, mref, hp), Dataset: ref, Model: mref, Hyperparameters: hp},
			RunID: id, Image: image, Executor: Docker, Output: "s3://runs/" + id + "/",
		})
		if err != nil {
			t.Fatal(err)
		}
		removeContainer(t, api, id)
		return Run{ID: id, Event: ev, Image: image, CPU: "1", Memory: "2Gi"}
	}
	// A real training.
	id := fmt.Sprintf("e2e-%d", stamp)
	start := time.Now()
	if err := d.Launch(ctx, mkRun(id, 1)); err != nil {
		t.Fatal(err)
	}
	t.Logf("launched (image pulled) in %s", time.Since(start).Round(time.Millisecond))
	info, err := api.Inspect(ctx, ContainerName(id))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.NetworkSettings.Networks[network]; !ok || info.Config.Image != pushed {
		t.Errorf("the container runs %s on %v, want %s on %s", info.Config.Image, info.NetworkSettings.Networks, pushed, network)
	}
	// Wait removes the container and its logs: read them first, once the
	// run has ended.
	testsupport.Eventually(t, 10*time.Minute, "run "+id+" to end", func() bool {
		c, err := d.container(ctx, id)
		return err == nil && c != nil && c.State == "exited"
	})
	logs, err := d.Logs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	code, err := d.Wait(ctx, id)
	t.Logf("training run ended (exit %d, %v) %s after its launch", code, err, time.Since(start).Round(time.Millisecond))
	if err != nil || code != 0 {
		t.Fatalf("run %s exited %d (%v); its log:\n%s", id, code, err, logs)
	}
	f := finishedOf(t, sink, id)
	if f.Status != events.StatusSucceeded {
		t.Errorf("run.finished = %+v, want succeeded; log:\n%s", f, logs)
	}
	t.Logf("run.finished metrics: %v", f.Metrics)
	var weights, metrics []string
	for o := range m.Client.ListObjects(ctx, "runs", minio.ListObjectsOptions{Prefix: id + "/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		switch rel := strings.TrimPrefix(o.Key, id+"/"); {
		case strings.HasPrefix(rel, "weights/"):
			weights = append(weights, rel)
		case rel == "metrics.json":
			metrics = append(metrics, rel)
		}
	}
	t.Logf("runs/%s/: %v, %v", id, weights, metrics)
	if len(weights) == 0 || len(metrics) != 1 {
		t.Errorf("runs/%s/ holds weights %v and %v, want weights and metrics.json", id, weights, metrics)
	}

	// A cancel: SIGTERM reaches the agent, which reports the run cancelled.
	id2 := id + "-cancel"
	if err := d.Launch(ctx, mkRun(id2, 50)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if _, err := m.Client.StatObject(ctx, "runs", id2+"/checkpoints/last.pt", minio.StatObjectOptions{}); err == nil {
			break
		}
		c, err := d.container(ctx, id2)
		if err != nil || c == nil || c.State != "running" || time.Now().After(deadline) {
			logs, lerr := d.Logs(ctx, id2)
			t.Fatalf("no checkpoint of the long run in MinIO; its container: %+v (%v); its log (%v):\n%s", c, err, lerr, logs)
		}
	}
	start = time.Now()
	if err := d.Cancel(ctx, id2); err != nil {
		t.Fatal(err)
	}
	t.Logf("cancel returned in %s", time.Since(start).Round(time.Millisecond))
	if c, err := d.container(ctx, id2); err != nil || c == nil || c.State != "exited" {
		t.Errorf("the cancelled run's container after Cancel: %+v (%v), want it exited", c, err)
	}
	logs, err = d.Logs(ctx, id2) // the container has stopped; Wait removes it
	if err != nil {
		t.Fatal(err)
	}
	if code, err = d.Wait(ctx, id2); err != nil {
		t.Fatalf("Wait(%s) = %v", id2, err)
	}
	testsupport.Eventually(t, 30*time.Second, "the cancelled run's run.finished", func() bool { // sent before the agent exits: there already
		return finishedOf(t, sink, id2).Status != ""
	})
	if f := finishedOf(t, sink, id2); code != 143 || f.Status != events.StatusCancelled {
		t.Errorf("cancelled run: exit %d, run.finished %+v; want 143 and cancelled; its log:\n%s", code, f, logs)
	}
}
