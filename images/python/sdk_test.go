// Package python_test runs the training SDK and its adapters for real, with
// Debian's python3-torch and python3-torchvision, on small datasets the tests
// make.
package python_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vision-platform/vp/internal/testsupport"
)

// python is Debian's python3 here; VP_TEST_PYTHON names another (the GPU
// machine's, which has timm and transformers).
var python = func() string {
	if p := os.Getenv("VP_TEST_PYTHON"); p != "" {
		return p
	}
	return testsupport.Python
}()

// MakeImageFolder and requireTorch come from testsupport.
var MakeImageFolder = testsupport.MakeImageFolder

func requireTorch(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import torch, torchvision, PIL").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import torch, torchvision and PIL (run make deps): %v\n%s", python, err, out)
	}
}

func requireModule(t *testing.T, module, where string) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import "+module).CombinedOutput(); err != nil {
		t.Skipf("%s is not importable with %s here (%s): %s", module, python, where, strings.TrimSpace(string(out)))
	}
}

type result struct {
	code    int
	metrics []map[string]any
	stdout  string
	stderr  string
}

func runSDK(t *testing.T, env []string, args ...string) result {
	t.Helper()
	wd, _ := os.Getwd()
	cmd := exec.Command(python, append([]string{"-m", "vp_sdk.run"}, args...)...)
	cmd.Env = append(append(os.Environ(), "PYTHONPATH="+wd, "PYTHONUNBUFFERED=1", "OMP_NUM_THREADS=2"), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	res := result{stdout: string(out), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["vp"] == "metric" {
			res.metrics = append(res.metrics, m)
		}
	}
	return res
}

func readJSON(t *testing.T, p string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return m
}

func TestInt_TorchvisionTraining(t *testing.T) {
	requireTorch(t)
	data, out := t.TempDir(), t.TempDir()
	MakeImageFolder(t, data, 16, 32)
	hp := `{"epochs":2,"batchSize":8,"learningRate":0.01,"imageSize":32,"seed":1}`
	res := runSDK(t, nil, "--adapter", "torchvision", "--model", "resnet18", "--dataset", data, "--output", out,
		"--hyperparameters", hp, "--dataset-digest", "sha256:abc", "--run-id", "run-1")
	if res.code != 0 {
		t.Fatalf("training exited %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	if len(res.metrics) != 2 {
		t.Fatalf("metric lines = %d, want one per epoch (2):\n%s", len(res.metrics), res.stdout)
	}
	for i, m := range res.metrics {
		if m["epoch"] != float64(i+1) || m["loss"] == nil || m["accuracy"] == nil || m["lr"] != 0.01 || m["step"] == nil {
			t.Errorf("metric line %d = %v", i, m)
		}
	}
	for _, f := range []string{"weights/model.pt", "weights/labels.json", "checkpoints/last.pt", "metrics.json", "model_card.json"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("output lacks %s: %v", f, err)
		}
	}
	if m := readJSON(t, filepath.Join(out, "metrics.json")); m["accuracy"] == nil {
		t.Errorf("metrics.json = %v", m)
	}
	card := readJSON(t, filepath.Join(out, "model_card.json"))
	if card["model"] != "resnet18" || card["datasetDigest"] != "sha256:abc" || card["runId"] != "run-1" || card["framework"] != "torchvision" {
		t.Errorf("model_card.json = %v", card)
	}

	// A restarted run with the same output resumes from its checkpoint.
	res = runSDK(t, nil, "--adapter", "torchvision", "--model", "resnet18", "--dataset", data, "--output", out,
		"--hyperparameters", strings.Replace(hp, `"epochs":2`, `"epochs":3`, 1))
	if res.code != 0 {
		t.Fatalf("resumed training exited %d\n%s", res.code, res.stderr)
	}
	if !strings.Contains(res.stdout, `"vp": "resume", "epoch": 2`) || len(res.metrics) != 1 || res.metrics[0]["epoch"] != float64(3) {
		t.Errorf("resume: want a resume line at epoch 2 and one metric line for epoch 3:\n%s", res.stdout)
	}
}

func TestInt_TorchvisionErrors(t *testing.T) {
	requireTorch(t)
	data := t.TempDir()
	MakeImageFolder(t, data, 4, 16)
	// Pretrained weights cannot be downloaded here: a clear error, exit 3.
	res := runSDK(t, []string{"TORCH_HOME=" + t.TempDir()}, "--adapter", "torchvision", "--model", "resnet18", "--dataset", data, "--output", t.TempDir(),
		"--hyperparameters", `{"epochs":1,"batchSize":4,"learningRate":0.01,"imageSize":16,"pretrained":true}`)
	if res.code != 3 || !strings.Contains(res.stderr, "pretrained weights for resnet18 cannot be loaded") {
		t.Errorf("pretrained without network: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runSDK(t, nil, "--adapter", "torchvision", "--model", "nosuchnet", "--dataset", data, "--output", t.TempDir(), "--hyperparameters", `{"imageSize":16}`)
	if res.code != 3 || !strings.Contains(res.stderr, "torchvision has no model 'nosuchnet'") {
		t.Errorf("unknown model: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runSDK(t, nil, "--adapter", "torchvision", "--model", "resnet18", "--dataset", t.TempDir(), "--output", t.TempDir())
	if res.code != 3 || !strings.Contains(res.stderr, "no train/ directory") {
		t.Errorf("empty dataset: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runSDK(t, nil, "--adapter", "nope", "--model", "x", "--dataset", data, "--output", t.TempDir())
	if res.code != 3 || !strings.Contains(res.stderr, "unknown adapter 'nope'") {
		t.Errorf("unknown adapter: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestInt_Timm(t *testing.T) {
	requireTorch(t)
	requireModule(t, "timm", "Debian does not package it; it is in the timm framework image")
	data := t.TempDir()
	MakeImageFolder(t, data, 8, 32)
	res := runSDK(t, nil, "--adapter", "timm", "--model", "resnet18", "--dataset", data, "--output", t.TempDir(),
		"--hyperparameters", `{"epochs":1,"batchSize":8,"learningRate":0.01,"imageSize":32}`)
	if res.code != 0 || len(res.metrics) != 1 {
		t.Errorf("timm training: exit %d, %d metric lines\n%s", res.code, len(res.metrics), res.stderr)
	}
}

func TestInt_CustomAdapter(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(src, "configs"), 0o755)
	os.WriteFile(filepath.Join(src, "configs", "train.yaml.tmpl"), []byte("epochs: ${epochs}\nbatch: ${batch_size}\nlr: ${learning_rate}\ndata: ${dataset_dir}\nanchors: ${anchors}\n"), 0o644)
	// A model with its own script and its own log format.
	os.WriteFile(filepath.Join(src, "train.py"), []byte(`import sys, os
cfg = dict(l.split(": ", 1) for l in open(sys.argv[2]).read().splitlines())
n = int(cfg["epochs"])
for e in range(1, n + 1):
    print(f"[yolo] Epoch {e}/{n} box_loss=0.{9-e}1 mAP50=0.{e}5 lr={cfg['lr']}", flush=True)
    print("some other chatter", flush=True)
os.makedirs("runs", exist_ok=True)
open("runs/best.pt", "w").write("weights")
print("anchors were", cfg["anchors"])
`), 0o644)
	desc := map[string]any{
		"template": "configs/train.yaml.tmpl", "config": "train.yaml",
		"command": []string{python, "train.py", "--cfg", "${config}"},
		"weights": []string{"runs/best.pt"},
		"rules":   []map[string]any{{"regex": `Epoch (?P<epoch>\d+)/\d+ box_loss=(?P<loss>[0-9.]+) mAP50=(?P<mAP50>[0-9.]+)`}},
	}
	b, _ := json.Marshal(desc)
	os.WriteFile(filepath.Join(src, "vp-custom.json"), b, 0o644)
	res := runSDK(t, nil, "--adapter", "custom", "--model", "yolov7", "--dataset", "/data/coco", "--output", out, "--task", "detection", "--format", "coco",
		"--hyperparameters", fmt.Sprintf(`{"epochs":2,"batchSize":4,"learningRate":0.001,"extra":{"sourceDir":%q,"anchors":"10,13"}}`, src))
	if res.code != 0 {
		t.Fatalf("custom run exited %d\n%s", res.code, res.stderr)
	}
	if len(res.metrics) != 2 || res.metrics[1]["epoch"] != float64(2) || res.metrics[1]["loss"] != 0.71 || res.metrics[1]["mAP50"] != 0.25 {
		t.Errorf("metric lines = %v", res.metrics)
	}
	cfg, _ := os.ReadFile(filepath.Join(out, "train.yaml"))
	if !strings.Contains(string(cfg), "epochs: 2\nbatch: 4\nlr: 0.001\ndata: /data/coco\nanchors: 10,13") {
		t.Errorf("filled config:\n%s", cfg)
	}
	if w, err := os.ReadFile(filepath.Join(out, "weights", "best.pt")); err != nil || string(w) != "weights" {
		t.Errorf("weights/best.pt: %v", err)
	}
	if !strings.Contains(res.stderr, "some other chatter") {
		t.Error("the model's own log did not reach stderr")
	}
	// A template variable nobody gives is an error naming it.
	os.WriteFile(filepath.Join(src, "configs", "train.yaml.tmpl"), []byte("x: ${nonesuch}\n"), 0o644)
	res = runSDK(t, nil, "--adapter", "custom", "--model", "yolov7", "--dataset", "/d", "--output", t.TempDir(),
		"--hyperparameters", fmt.Sprintf(`{"extra":{"sourceDir":%q}}`, src))
	if res.code != 3 || !strings.Contains(res.stderr, "no value for ${nonesuch}") {
		t.Errorf("missing template value: exit %d, %q", res.code, res.stderr)
	}
}

func TestInt_HuggingFace(t *testing.T) {
	requireTorch(t)
	requireModule(t, "transformers", "Debian does not package it; it is in the huggingface framework image")
	data, out := t.TempDir(), t.TempDir()
	MakeImageFolder(t, data, 8, 32)
	hp := `{"epochs":2,"batchSize":8,"learningRate":0.001,"imageSize":32,"seed":1}`
	res := runSDK(t, nil, "--adapter", "huggingface", "--model", "vit", "--dataset", data, "--output", out, "--hyperparameters", hp)
	if res.code != 0 || len(res.metrics) != 2 || res.metrics[1]["epoch"] != float64(2) {
		t.Fatalf("huggingface training: exit %d, metrics %v\n%s", res.code, res.metrics, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "weights", "model.safetensors")); err != nil {
		t.Errorf("no exported model: %v", err)
	}
	res = runSDK(t, nil, "--adapter", "huggingface", "--model", "vit", "--dataset", data, "--output", out,
		"--hyperparameters", strings.Replace(hp, `"epochs":2`, `"epochs":3`, 1))
	if res.code != 0 || !strings.Contains(res.stdout, `"vp": "resume", "epoch": 2`) || len(res.metrics) != 1 || res.metrics[0]["epoch"] != float64(3) {
		t.Errorf("huggingface resume: exit %d, metrics %v\n%s", res.code, res.metrics, res.stdout)
	}
}

func TestInt_Ultralytics(t *testing.T) {
	requireTorch(t)
	requireModule(t, "ultralytics", "Debian does not package it; it is in the ultralytics framework image")
	res := runSDK(t, nil, "--adapter", "ultralytics", "--model", "yolov8n", "--dataset", t.TempDir(), "--output", t.TempDir(), "--format", "yolo", "--task", "detection")
	if res.code != 3 || !strings.Contains(res.stderr, "no data.yaml") {
		t.Errorf("ultralytics without data.yaml: exit %d, %q", res.code, res.stderr)
	}
}

func TestCOCOToYOLO(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(dir, "annotations"), 0o755)
	os.MkdirAll(filepath.Join(dir, "train"), 0o755)
	os.WriteFile(filepath.Join(dir, "train", "a.jpg"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "train", "b.jpg"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "annotations", "instances_train.json"), []byte(`{
 "images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100}, {"id": 2, "file_name": "b.jpg", "width": 10, "height": 10}],
 "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
 "annotations": [{"image_id": 1, "category_id": 7, "bbox": [50, 25, 100, 50]}, {"image_id": 1, "category_id": 3, "bbox": [0, 0, 20, 10], "iscrowd": 1}]}`), 0o644)
	wd, _ := os.Getwd()
	cmd := exec.Command(python, "-c", "import sys; from vp_sdk.formats import coco_to_yolo; print(coco_to_yolo(sys.argv[1], sys.argv[2]))", dir, out)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+wd)
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("coco_to_yolo: %v\n%s", err, res)
	}
	label, _ := os.ReadFile(filepath.Join(out, "labels", "train", "a.txt"))
	if string(label) != "1 0.500000 0.500000 0.500000 0.500000\n" {
		t.Errorf("a.txt = %q (dog is class 1: categories are ordered by id; the crowd box is skipped)", label)
	}
	if b, err := os.ReadFile(filepath.Join(out, "labels", "train", "b.txt")); err != nil || len(b) != 0 {
		t.Errorf("b.txt = %q, %v; want an empty label file", b, err)
	}
	data, _ := os.ReadFile(filepath.Join(out, "data.yaml"))
	if !strings.Contains(string(data), "train: images/train\nval: images/train\nnames:\n  0: \"cat\"\n  1: \"dog\"") {
		t.Errorf("data.yaml:\n%s", data)
	}
	if target, err := os.Readlink(filepath.Join(out, "images", "train", "a.jpg")); err != nil || target != filepath.Join(dir, "train", "a.jpg") {
		t.Errorf("image link %q, %v", target, err)
	}
}
