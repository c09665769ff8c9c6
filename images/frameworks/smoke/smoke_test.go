package smoke

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/images/agent"
	"github.com/vision-platform/vp/images/assemble"
	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/publish"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/dataset/datasettest"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/local/ociregistry"
	"github.com/vision-platform/vp/registry"
)

// wantMetrics are the metrics run.finished must carry for a model's task
// (images/python/PROTOCOL.md, "Metric names by task"), and the field every
// prediction of predictions.json carries.
func wantMetrics(m registry.Model) (metrics []string, prediction string) {
	switch {
	case m.Task == events.TaskClassification:
		return []string{"accuracy", "top5"}, "top"
	case m.Task == events.TaskDetection: // obb too
		return []string{"mAP50", "mAP50-95"}, "boxes"
	case m.Task == events.TaskSegmentation && m.Variant == "semantic":
		return []string{"mIoU", "pixel_accuracy"}, "pixels"
	case m.Task == events.TaskSegmentation:
		return []string{"mAP50", "mask_mAP50", "mask_mAP50-95"}, "boxes"
	case m.Task == events.TaskPose:
		return []string{"pose_mAP50", "pose_mAP50-95"}, "instances"
	case m.Task == events.TaskCaptioning:
		return []string{"bleu4", "cider"}, "caption"
	}
	return nil, ""
}

// makeDataset writes a tiny dataset of m's task in its first format.
func makeDataset(t *testing.T, m registry.Model, dir string) (task, format string) {
	t.Helper()
	format = m.Formats[0]
	switch {
	case m.Task == events.TaskClassification:
		datasettest.MakeImageFolder(t, dir, 4, 32)
	case m.Task == events.TaskCaptioning:
		datasettest.MakeCaptions(t, dir, 4, 64)
	case format == events.FormatCOCO:
		datasettest.MakeCOCO(t, dir, 4, 64)
	case m.Task == events.TaskPose:
		datasettest.MakeYOLO(t, dir, datasettest.Keypoints, 4, 64)
	case m.Task == events.TaskSegmentation, m.Variant == "obb":
		// outlines: instance masks, and the four corners of oriented boxes
		datasettest.MakeYOLO(t, dir, datasettest.Polygons, 4, 64)
	default:
		datasettest.MakeYOLO(t, dir, datasettest.Boxes, 4, 64)
	}
	return m.Task, format
}

// hyperparameters for a few steps: one epoch of batches of two, at the
// model's own input size where it is fixed, else a small one.
func hyperparameters(m registry.Model) events.Hyperparameters {
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 2, LearningRate: 0.001, Seed: 1}
	switch {
	case m.Input.Fixed:
		hp.ImageSize = m.Input.Size // 0 (left to the config) where not square
	case m.Task == events.TaskClassification:
		hp.ImageSize = 32
	default:
		hp.ImageSize = 64
	}
	return hp
}

// TestInt_ReadyModelsTrainInTheirImages trains every ready model of the
// catalog in its framework image (see the package doc).
func TestInt_ReadyModelsTrainInTheirImages(t *testing.T) {
	testsupport.Integration(t)
	requireEngine(t)
	cat := registry.Default()
	var ready []registry.Model
	specs := map[string]bool{}
	for _, m := range cat.Models() {
		if m.Ready() {
			ready = append(ready, m)
			specs[m.ImageSpec()] = true
		}
	}
	if len(ready) == 0 {
		t.Fatal("no ready model in the catalog")
	}
	imgs := buildImages(t, slices.Sorted(maps.Keys(specs)))

	mi := testsupport.StartMinIO(t)
	mi.Bucket(t, "datasets")
	mi.Bucket(t, "runs")
	sink := testsupport.NewSink(t, events.Validate)
	var mu sync.Mutex
	times := map[string]time.Duration{}
	t.Cleanup(func() {
		for _, m := range ready {
			if d, ok := times[m.Ref().String()]; ok {
				t.Logf("%-40s %6.1f s", m.Ref(), d.Seconds())
			}
		}
	})
	for _, m := range ready {
		t.Run(m.Ref().String(), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			trainOne(t, m, imgs[m.ImageSpec()], mi, sink)
			mu.Lock()
			times[m.Ref().String()] = time.Since(start)
			mu.Unlock()
		})
	}
}

// image is a framework image as the test runs it.
type image struct {
	ref  string // repo@digest in the test's registry
	id   string // the Docker Engine's image id (the config digest)
	gpus string // docker run --gpus, "" for none
}

func trainOne(t *testing.T, m registry.Model, img image, mi *testsupport.MinIO, sink *testsupport.Sink) {
	ctx := context.Background()
	data := t.TempDir()
	task, format := makeDataset(t, m, data)
	if _, problems, err := dataset.Validate(os.DirFS(data), task, format); err != nil || len(problems) > 0 {
		t.Fatalf("the generated %s %s dataset: %v %v", task, format, problems, err)
	}
	manifest, digest, err := dataset.ManifestOf(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	prefix := strings.NewReplacer("/", "-", ".", "-").Replace(m.Ref().String()) + "/"
	mi.PutDir(t, data, "datasets", prefix)
	if _, err := mi.Client.PutObject(ctx, "datasets", prefix+dataset.ManifestName, bytes.NewReader(manifest), int64(len(manifest)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := events.DatasetRef{Bucket: "datasets", Prefix: prefix, Digest: digest, Task: task, Format: format}
	job := events.JobRequestedData{Dataset: ref, Model: m.Ref(), Hyperparameters: hyperparameters(m), Resources: events.Resources{GPUs: 0}}
	job.ID = events.JobID(digest, job.Model, job.Hyperparameters)
	if probs := registry.Default().CheckJob(job); len(probs) > 0 {
		t.Fatalf("the catalog refuses the smoke job: %v", probs)
	}
	runID := "smoke-" + strings.TrimSuffix(prefix, "/")
	if img.gpus != "" {
		runID += "-gpu"
	}
	req, err := events.New(ctx, "/test/smoke", events.RunStartedData{
		Job: job, RunID: runID, Image: img.ref, Executor: "docker", Output: "s3://runs/" + runID + "/",
		Adapter: events.AdapterRef{Name: m.Adapter, Model: m.AdapterArg(false)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The big models' weights and checkpoints run to gigabytes: the run's
	// objects go once checked.
	t.Cleanup(func() { removePrefix(t, mi, "runs", runID+"/") })
	work := t.TempDir()
	python := containerPython(t, work, img, runID)
	fin, err := agent.Run(ctx, agent.Config{
		Store: objstore.FromMinIO(mi.Client), Sink: &agent.Sink{URL: sink.URL}, WorkDir: work, Python: python,
		Grace: 20 * time.Second, Poll: time.Second, Attempts: 3, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}, req)
	if err != nil {
		t.Fatal(err)
	}
	if fin.Status != events.StatusSucceeded {
		t.Fatalf("run.finished %s: %s\n%s", fin.Status, fin.Reason, fin.LogTail)
	}
	metrics, field := wantMetrics(m)
	for _, k := range metrics {
		if _, ok := fin.Metrics[k]; !ok {
			t.Errorf("final metrics %v lack %s", fin.Metrics, k)
		}
	}
	var names []string
	for _, a := range fin.Artifacts {
		names = append(names, a.Name)
		checkArtifact(t, mi, a)
	}
	for _, want := range []string{"metrics.json", "model_card.json", "predictions.json"} {
		if !slices.Contains(names, want) {
			t.Errorf("artifacts %v lack %s", names, want)
		}
	}
	if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "weights/") }) {
		t.Errorf("artifacts %v have no weights/", names)
	}
	checkPredictions(t, mi, "runs", runID+"/predictions.json", field)
	t.Logf("%s: %v", m.Ref(), fin.Metrics)
}

// removePrefix removes the objects under prefix in bucket.
func removePrefix(t *testing.T, mi *testsupport.MinIO, bucket, prefix string) {
	ctx := context.Background()
	objs := mi.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true})
	for e := range mi.Client.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		t.Errorf("removing %s/%s: %v", bucket, e.ObjectName, e.Err)
	}
}

// checkArtifact reads an artifact back from MinIO: its size and sha256
// are run.finished's.
func checkArtifact(t *testing.T, mi *testsupport.MinIO, a events.Artifact) {
	t.Helper()
	bucket, key, ok := strings.Cut(strings.TrimPrefix(a.URI, "s3://"), "/")
	if !ok {
		t.Fatalf("artifact URI %s", a.URI)
	}
	obj, err := mi.Client.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	h := sha256.New()
	n, err := io.Copy(h, obj)
	if err != nil {
		t.Fatalf("reading %s: %v", a.URI, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 || n != a.Size {
		t.Errorf("%s: %d bytes, sha256 %s; run.finished says %d, %s", a.URI, n, got, a.Size, a.SHA256)
	}
}

// checkPredictions reads predictions.json: at least one prediction, each
// naming its image and carrying the task's field.
func checkPredictions(t *testing.T, mi *testsupport.MinIO, bucket, key, field string) {
	t.Helper()
	obj, err := mi.Client.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	var doc struct {
		Predictions []map[string]json.RawMessage `json:"predictions"`
	}
	if err := json.NewDecoder(obj).Decode(&doc); err != nil {
		t.Fatalf("predictions.json: %v", err)
	}
	if len(doc.Predictions) == 0 {
		t.Fatal("predictions.json has no predictions")
	}
	for i, p := range doc.Predictions {
		var img string
		if err := json.Unmarshal(p["image"], &img); err != nil || img == "" {
			t.Errorf("predictions[%d].image = %s", i, p["image"])
		}
		if _, ok := p[field]; !ok {
			t.Errorf("predictions[%d] has no %s: %v", i, field, slices.Sorted(maps.Keys(p)))
		}
	}
}

// containerPython writes the "python" the agent starts: the image's
// python3 in a container with no network, the work folder mounted at its
// own path (the agent passes absolute paths under it).
func containerPython(t *testing.T, work string, img image, runID string) string {
	t.Helper()
	container := "vp-smoke-" + runID
	gpus := ""
	if img.gpus != "" {
		gpus = "--gpus " + img.gpus + " "
	}
	script := fmt.Sprintf(`#!/bin/sh
exec docker run --rm --network none --name %s -v %s:%s -w %s %s\
  -e PYTHONUNBUFFERED=1 -e OMP_NUM_THREADS=1 -e MKL_NUM_THREADS=1 \
  --entrypoint /usr/bin/python3 %s "$@"
`, container, work, work, work, gpus, img.id)
	p := filepath.Join(t.TempDir(), "python3")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// gone already when the run ended; there after a failure
		if out, err := exec.Command("docker", "rm", "--force", container).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such container") {
			t.Logf("removing %s: %v: %s", container, err, out)
		}
	})
	return p
}

// requireEngine skips the test, naming why, where no Docker Engine answers.
func requireEngine(t *testing.T) {
	t.Helper()
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		t.Skipf("no Docker Engine answers (docker version: %v: %s): the framework images run as containers (%s)", err, bytes.TrimSpace(out), testsupport.DockerEngineWhere)
	}
}

// buildImages builds each spec from its lock into the machine's layer
// cache, pushes it to the embedded registry (its data in the cache
// folder, so a rebuilt image pushes only what changed), and has the
// Docker Engine pull it unless it holds it already. Where a wheel is
// neither in the wheel store nor reachable on PyPI, the test skips.
func buildImages(t *testing.T, specNames []string) map[string]image {
	t.Helper()
	ctx := context.Background()
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(home, ".cache", "vision-platform")
	specs, err := imagespec.LoadDir(filepath.Join(testsupport.ModuleRoot(t), "images", "frameworks"))
	if err != nil {
		t.Fatal(err)
	}
	cache, err := assemble.OpenCache(filepath.Join(cacheDir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(cacheDir, "registry"), 0o755); err != nil {
		t.Fatal(err)
	}
	reg, err := ociregistry.New(ctx, filepath.Join(cacheDir, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	pub, err := publish.New()
	if err != nil {
		t.Fatal(err)
	}
	repo := strings.TrimPrefix(srv.URL, "http://") + "/vp"
	b, err := assemble.New(cache, specs, assemble.WithPush(pub, repo, name.Insecure))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]image{}
	for _, s := range specNames {
		start := time.Now()
		r, err := b.Build(ctx, s)
		if err != nil {
			if reason := pypiUnreachable(); reason != "" {
				t.Skipf("building the %s image: %v; PyPI does not answer here (%s): its wheels are downloaded once on a machine that reaches PyPI (the polyglot kind)", s, err, reason)
			}
			t.Fatalf("building the %s image: %v", s, err)
		}
		if r.Artifact.IsIndex() {
			t.Fatalf("%s is an index; the framework images are one platform", s)
		}
		cfg, err := r.Artifact.Image().ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		img := image{ref: r.Reference, id: cfg.String()}
		if exec.Command("docker", "image", "inspect", img.id).Run() != nil {
			// Pulled under a name only this registry's port gives; tagged
			// vp-smoke/<spec> so that the layers stay once it is untagged.
			if msg, err := exec.Command("docker", "pull", "--quiet", r.Reference).CombinedOutput(); err != nil {
				t.Fatalf("docker pull %s: %v\n%s", r.Reference, err, msg)
			}
			tag := "vp-smoke/" + s + ":latest"
			before, _ := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", tag).Output() // none the first time
			if msg, err := exec.Command("docker", "tag", img.id, tag).CombinedOutput(); err != nil {
				t.Fatalf("docker tag: %v\n%s", err, msg)
			}
			// The image it replaces goes, unless a container still uses it
			// (its wheel layers stay: the new image has them too).
			if old := strings.TrimSpace(string(before)); old != "" && old != img.id {
				if msg, err := exec.Command("docker", "image", "rm", old).CombinedOutput(); err != nil {
					t.Logf("removing the replaced %s image %s: %v: %s", s, old, err, bytes.TrimSpace(msg))
				}
			}
			if msg, err := exec.Command("docker", "rmi", r.Reference).CombinedOutput(); err != nil {
				t.Logf("docker rmi %s: %v\n%s", r.Reference, err, msg)
			}
		}
		// No interface but loopback in the containers the runs use.
		nets, err := exec.Command("docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/ls", img.id, "/sys/class/net").CombinedOutput()
		if err != nil || strings.TrimSpace(string(nets)) != "lo" {
			t.Fatalf("network interfaces in a %s container: %q (%v), want lo only", s, nets, err)
		}
		t.Logf("image %s: %s (%d layers built, %s pushed) in %.1f s", s, r.Reference, r.Built, byteSize(r.BytesPushed), time.Since(start).Seconds())
		out[s] = img
	}
	return out
}

// pypiUnreachable says why PyPI does not answer, or "" when it does.
func pypiUnreachable() string {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("https://pypi.org/simple/pip/")
	if err != nil {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			return "no answer in 10 s"
		}
		return err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.Status
	}
	return ""
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}

// TestInt_GPUSmoke trains one ready model of each framework image on
// CUDA (the container given the machine's first GPU) and on the CPU, and
// logs both wall times. It runs where an NVIDIA GPU and a Docker Engine
// with its runtime answer: the GPU machine kind, lent to some tasks.
func TestInt_GPUSmoke(t *testing.T) {
	testsupport.Integration(t)
	if out, err := exec.Command("nvidia-smi", "-L").CombinedOutput(); err != nil || !strings.Contains(string(out), "GPU 0") {
		t.Skipf("no NVIDIA GPU on this machine (nvidia-smi -L: %v %s): the GPU kind of machine runs this test", err, bytes.TrimSpace(out))
	}
	requireEngine(t)
	var models []registry.Model
	seen := map[string]bool{}
	for _, m := range registry.Default().Models() {
		if m.Ready() && !seen[m.ImageSpec()] && m.ImageSpec() != "torchvision-cpu" {
			seen[m.ImageSpec()] = true
			models = append(models, m)
		}
	}
	imgs := buildImages(t, slices.Sorted(maps.Keys(seen)))
	mi := testsupport.StartMinIO(t)
	mi.Bucket(t, "datasets")
	mi.Bucket(t, "runs")
	sink := testsupport.NewSink(t, events.Validate)
	for _, m := range models {
		t.Run(m.Ref().String(), func(t *testing.T) {
			cpu := time.Now()
			trainOne(t, m, imgs[m.ImageSpec()], mi, sink)
			cpuTook := time.Since(cpu)
			gpu := imgs[m.ImageSpec()]
			gpu.gpus = "device=0"
			start := time.Now()
			trainOne(t, m, gpu, mi, sink)
			t.Logf("%s: one epoch on CUDA %.1f s, on the CPU (one thread) %.1f s", m.Ref(), time.Since(start).Seconds(), cpuTook.Seconds())
		})
	}
}

// TestInt_AdapterEdgesInTheirImages: what one epoch from scratch does not
// show, run with the SDK straight in the framework images (no agent, no
// network): the huggingface adapter resumes from its checkpoint where a
// longer run of the same output goes on, and the ultralytics adapter
// refuses a YOLO dataset without data.yaml (exit 3, naming it).
func TestInt_AdapterEdgesInTheirImages(t *testing.T) {
	testsupport.Integration(t)
	requireEngine(t)
	imgs := buildImages(t, []string{"huggingface", "ultralytics"})

	t.Run("huggingface resumes", func(t *testing.T) {
		data, out := t.TempDir(), t.TempDir()
		datasettest.MakeImageFolder(t, data, 4, 32)
		hp := `{"epochs":2,"batchSize":4,"learningRate":0.001,"imageSize":32,"seed":1}`
		code, stdout, stderr := runSDK(t, imgs["huggingface"], data, out, "--adapter", "huggingface", "--model", "vit",
			"--dataset", data, "--output", out, "--hyperparameters", hp)
		if code != 0 || strings.Count(stdout, `"vp": "metric"`) != 2 {
			t.Fatalf("two epochs: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(out, "weights", "model.safetensors")); err != nil {
			t.Errorf("no exported model: %v", err)
		}
		code, stdout, stderr = runSDK(t, imgs["huggingface"], data, out, "--adapter", "huggingface", "--model", "vit",
			"--dataset", data, "--output", out, "--hyperparameters", strings.Replace(hp, `"epochs":2`, `"epochs":3`, 1))
		if code != 0 || !strings.Contains(stdout, `"vp": "resume", "epoch": 2`) || strings.Count(stdout, `"vp": "metric"`) != 1 || !strings.Contains(stdout, `"epoch": 3`) {
			t.Errorf("three epochs on the same output: exit %d, want a resume after epoch 2 and one metric line for epoch 3\n%s\n%s", code, stdout, stderr)
		}
	})

	t.Run("ultralytics without data.yaml", func(t *testing.T) {
		data, out := t.TempDir(), t.TempDir()
		code, _, stderr := runSDK(t, imgs["ultralytics"], data, out, "--adapter", "ultralytics", "--model", "yolov8n.yaml",
			"--dataset", data, "--output", out, "--format", "yolo", "--task", "detection",
			"--hyperparameters", `{"epochs":1,"batchSize":2,"learningRate":0.01,"imageSize":64}`)
		if code != 3 || !strings.Contains(stderr, "data.yaml") {
			t.Errorf("ultralytics without data.yaml: exit %d, want 3 naming data.yaml\n%s", code, stderr)
		}
	})
}

// runSDK runs python3 -m vp_sdk.run in img with no network, the folders
// data and out mounted at their own paths, and returns its exit code,
// standard output and standard error.
func runSDK(t *testing.T, img image, data, out string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("docker", append([]string{"run", "--rm", "--network", "none",
		"-v", data + ":" + data, "-v", out + ":" + out, "-e", "OMP_NUM_THREADS=1",
		"--entrypoint", "/usr/bin/python3", img.id, "-m", "vp_sdk.run"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("docker run: %v\n%s", err, stderr.String())
	return 0, "", ""
}
