// Package python_test runs the training SDK and its adapters for real, with
// Debian's python3-torch and python3-torchvision, on small datasets the tests
// make, and the SDK's own Python unit tests (tests/).
package python_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/internal/testsupport"
)

// python is Debian's python3 here; VP_TEST_PYTHON names another. The
// adapters of timm, transformers and ultralytics, which Debian does not
// package, are tested in their framework images (images/frameworks/smoke).
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

type result struct {
	code    int
	metrics []map[string]any // the metric lines
	final   map[string]any   // the final line
	stdout  string
	stderr  string
}

// pythonPath puts this directory, where vp_sdk lives, on PYTHONPATH.
func pythonPath(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return "PYTHONPATH=" + wd
}

// write writes files under dir, making their directories.
func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runSDK(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(python, append([]string{"-m", "vp_sdk.run"}, args...)...)
	cmd.Env = append(append(os.Environ(), pythonPath(t), "PYTHONUNBUFFERED=1", "OMP_NUM_THREADS=2"), env...)
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
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch m["vp"] {
		case "metric":
			res.metrics = append(res.metrics, m)
		case "final":
			res.final = m
		}
	}
	return res
}

// TestInt_PythonUnit runs the SDK's unit tests (tests/test_*.py), which
// need no framework: hyperparameters, the protocol's writer, the Adapter
// interface and the adapter registry.
func TestInt_PythonUnit(t *testing.T) {
	testsupport.Integration(t)
	cmd := exec.Command(python, "-m", "unittest", "discover", "-s", "tests", "-v")
	cmd.Env = append(os.Environ(), pythonPath(t), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python unit tests: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "\nOK") {
		t.Fatalf("python unit tests did not pass:\n%s", out)
	}
}

// TestInt_HyperparametersRequired: the job always carries epochs, batchSize
// and learningRate (events.Hyperparameters); the SDK has no defaults for
// them and names the one that is missing.
func TestInt_HyperparametersRequired(t *testing.T) {
	testsupport.Integration(t)
	for _, tc := range []struct {
		hp, want string
	}{
		{`{"batchSize":8,"learningRate":0.01}`, "vp_sdk: hyperparameters.epochs is missing"},
		{`{"epochs":1,"learningRate":0.01}`, "vp_sdk: hyperparameters.batchSize is missing"},
		{`{"epochs":1,"batchSize":8}`, "vp_sdk: hyperparameters.learningRate is missing"},
		{`{"epochs":"1","batchSize":8,"learningRate":0.01}`, "vp_sdk: hyperparameters.epochs: want int, got '1'"},
		{`{"epochs":1,`, "vp_sdk: hyperparameters: not JSON"},
	} {
		res := runSDK(t, nil, "--adapter", "torchvision", "--model", "resnet18", "--dataset", t.TempDir(), "--output", t.TempDir(), "--hyperparameters", tc.hp)
		if res.code != 3 || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("--hyperparameters %s: exit %d, stderr %q; want 3 and %q", tc.hp, res.code, res.stderr, tc.want)
		}
	}
	res := runSDK(t, nil, "--adapter", "torchvision", "--model", "resnet18", "--dataset", t.TempDir(), "--output", t.TempDir())
	if res.code != 2 || !strings.Contains(res.stderr, "--hyperparameters") {
		t.Errorf("without --hyperparameters: exit %d, stderr %q; want 2 naming the flag", res.code, res.stderr)
	}
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
	testsupport.Integration(t)
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
	metrics := readJSON(t, filepath.Join(out, "metrics.json"))
	if metrics["accuracy"] == nil {
		t.Errorf("metrics.json = %v", metrics)
	}
	if diff := cmp.Diff(map[string]any{"vp": "final", "metrics": metrics}, res.final); diff != "" {
		t.Errorf("final line, want metrics.json's metrics (-want +got):\n%s", diff)
	}
	card := readJSON(t, filepath.Join(out, "model_card.json"))
	if card["model"] != "resnet18" || card["datasetDigest"] != "sha256:abc" || card["runId"] != "run-1" || card["framework"] != "torchvision" ||
		card["device"] != "cpu" || len(card["classes"].([]any)) < 2 {
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
	testsupport.Integration(t)
	requireTorch(t)
	data := t.TempDir()
	MakeImageFolder(t, data, 4, 16)
	// Pretrained weights cannot be downloaded here: a clear error, exit 3.
	res := runSDK(t, []string{"TORCH_HOME=" + t.TempDir()}, "--adapter", "torchvision", "--model", "resnet18", "--dataset", data, "--output", t.TempDir(),
		"--hyperparameters", `{"epochs":1,"batchSize":4,"learningRate":0.01,"imageSize":16,"pretrained":true}`)
	if res.code != 3 || !strings.Contains(res.stderr, "pretrained weights for resnet18 cannot be loaded") {
		t.Errorf("pretrained without network: exit %d, stderr %q", res.code, res.stderr)
	}
	hp := `{"epochs":1,"batchSize":4,"learningRate":0.01,"imageSize":16}`
	res = runSDK(t, nil, "--adapter", "torchvision", "--model", "nosuchnet", "--dataset", data, "--output", t.TempDir(), "--hyperparameters", hp)
	if res.code != 3 || !strings.Contains(res.stderr, "torchvision has no model 'nosuchnet'") {
		t.Errorf("unknown model: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runSDK(t, nil, "--adapter", "torchvision", "--model", "resnet18", "--dataset", t.TempDir(), "--output", t.TempDir(), "--hyperparameters", hp)
	if res.code != 3 || !strings.Contains(res.stderr, "no train/ directory") {
		t.Errorf("empty dataset: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runSDK(t, nil, "--adapter", "nope", "--model", "x", "--dataset", data, "--output", t.TempDir(), "--hyperparameters", hp)
	if res.code != 3 || !strings.Contains(res.stderr, "unknown adapter 'nope'") {
		t.Errorf("unknown adapter: exit %d, stderr %q", res.code, res.stderr)
	}
}

// saveStateDict writes a torchvision resnet18 state dict (1000 classes)
// whose conv1.weight is all fill, as imported weights would be.
func saveStateDict(t *testing.T, path string, fill float64) {
	t.Helper()
	cmd := exec.Command(python, "-c", `import sys, torch, torchvision
m = torchvision.models.resnet18(weights=None)
with torch.no_grad():
    m.conv1.weight.fill_(float(sys.argv[2]))
torch.save(m.state_dict(), sys.argv[1])`, path, fmt.Sprint(fill))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("saving a state dict: %v\n%s", err, out)
	}
}

// TestInt_TorchvisionWeights: with --weights the model starts from that
// state dict (its first tensor's values in the model card), the 1000-class
// head kept out; files that do not fit are refused, naming what is wrong.
func TestInt_TorchvisionWeights(t *testing.T) {
	testsupport.Integration(t)
	requireTorch(t)
	data, out, dir := t.TempDir(), t.TempDir(), t.TempDir()
	MakeImageFolder(t, data, 4, 16)
	file := filepath.Join(dir, "resnet18-imported.pth")
	saveStateDict(t, file, 0.123)
	hp := `{"epochs":1,"batchSize":4,"learningRate":0.01,"imageSize":16,"pretrained":true}`
	// TORCH_HOME empty: a hub download would fail, so passing proves none was tried.
	env := []string{"TORCH_HOME=" + t.TempDir()}
	res := runSDK(t, env, "--adapter", "torchvision", "--model", "resnet18", "--dataset", data, "--output", out, "--hyperparameters", hp, "--weights", file)
	if res.code != 0 {
		t.Fatalf("training from --weights exited %d\n%s", res.code, res.stderr)
	}
	card := readJSON(t, filepath.Join(out, "model_card.json"))
	iw, _ := card["initialWeights"].(map[string]any)
	first, _ := iw["first"].(float64)
	mean, _ := iw["mean"].(float64)
	if iw["source"] != "file" || iw["file"] != "resnet18-imported.pth" || iw["tensor"] != "conv1.weight" ||
		math.Abs(first-0.123) > 1e-6 || math.Abs(mean-0.123) > 1e-6 || iw["loaded"] != float64(120) {
		t.Errorf("initialWeights = %v; want conv1.weight starting at 0.123 from the file, 120 tensors loaded", iw)
	}
	if diff := cmp.Diff([]any{"fc.weight", "fc.bias"}, iw["skipped"]); diff != "" {
		t.Errorf("initialWeights.skipped (-want +got):\n%s", diff)
	}
	for _, want := range []string{
		"vp_sdk: weights resnet18-imported.pth: loaded 120 tensors into torchvision's resnet18; kept out of the load (the classification head, sized for other classes): fc.weight, fc.bias",
		"vp_sdk: starting from weights resnet18-imported.pth: conv1.weight[0] = 0.123, mean 0.123",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	// Without --weights the model card says where the model started too.
	out2 := t.TempDir()
	res = runSDK(t, nil, "--adapter", "torchvision", "--model", "resnet18", "--dataset", data, "--output", out2,
		"--hyperparameters", strings.Replace(hp, `,"pretrained":true`, "", 1))
	if res.code != 0 {
		t.Fatalf("training from scratch exited %d\n%s", res.code, res.stderr)
	}
	if iw := readJSON(t, filepath.Join(out2, "model_card.json"))["initialWeights"].(map[string]any); iw["source"] != "none" || iw["first"] == 0.123 {
		t.Errorf("initialWeights from scratch = %v", iw)
	}

	// Files that do not fit: clear errors, exit 3.
	write(t, dir, map[string]string{"text.pth": "not weights"})
	small := filepath.Join(dir, "small.pth")
	if b, err := exec.Command(python, "-c", `import sys, torch; torch.save({"model": {"conv1.weight": torch.zeros(3)}}, sys.argv[1])`, small).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	for _, c := range []struct{ file, want string }{
		{filepath.Join(dir, "text.pth"), "vp_sdk: weights text.pth: not a PyTorch state dict"},
		{small, "vp_sdk: weights small.pth do not fit torchvision's resnet18: conv1.weight has shape [3], the model's [64, 3, 7, 7]; bn1.weight is missing from the file"},
		{filepath.Join(dir, "nope.pth"), "--weights " + filepath.Join(dir, "nope.pth") + ": no such file"},
	} {
		res := runSDK(t, env, "--adapter", "torchvision", "--model", "resnet18", "--dataset", data, "--output", t.TempDir(), "--hyperparameters", hp, "--weights", c.file)
		if res.code != 3 || !strings.Contains(res.stderr, c.want) {
			t.Errorf("--weights %s: exit %d, stderr %q; want 3 and %q", filepath.Base(c.file), res.code, res.stderr, c.want)
		}
	}
}

func TestInt_CustomAdapter(t *testing.T) {
	testsupport.Integration(t)
	src, out := t.TempDir(), t.TempDir()
	// A model with its own script and its own log format.
	write(t, src, map[string]string{
		"configs/train.yaml.tmpl": "epochs: ${epochs}\nbatch: ${batch_size}\nlr: ${learning_rate}\ndata: ${dataset_dir}\nanchors: ${anchors}\n",
		"train.py": `import sys, os
cfg = dict(l.split(": ", 1) for l in open(sys.argv[2]).read().splitlines())
n = int(cfg["epochs"])
for e in range(1, n + 1):
    print(f"[yolo] Epoch {e}/{n} box_loss=0.{9-e}1 mAP50=0.{e}5 lr={cfg['lr']}", flush=True)
    print("some other chatter", flush=True)
os.makedirs("runs", exist_ok=True)
open("runs/best.pt", "w").write("weights")
print("anchors were", cfg["anchors"])
`,
	})
	describe := func(regex string) {
		t.Helper()
		b, err := json.Marshal(map[string]any{
			"template": "configs/train.yaml.tmpl", "config": "train.yaml",
			"command": []string{python, "train.py", "--cfg", "${config}"},
			"weights": []string{"runs/best.pt"},
			"rules":   []map[string]any{{"regex": regex}},
		})
		if err != nil {
			t.Fatal(err)
		}
		write(t, src, map[string]string{"vp-custom.json": string(b)})
	}
	describe(`Epoch (?P<epoch>\d+)/\d+ box_loss=(?P<loss>[0-9.]+) mAP50=(?P<mAP50>[0-9.]+)`)
	res := runSDK(t, nil, "--adapter", "custom", "--model", "yolov7", "--dataset", "/data/coco", "--output", out, "--task", "detection", "--format", "coco",
		"--hyperparameters", fmt.Sprintf(`{"epochs":2,"batchSize":4,"learningRate":0.001,"extra":{"sourceDir":%q,"anchors":"10,13"}}`, src))
	if res.code != 0 {
		t.Fatalf("custom run exited %d\n%s", res.code, res.stderr)
	}
	if len(res.metrics) != 2 || res.metrics[1]["epoch"] != float64(2) || res.metrics[1]["loss"] != 0.71 || res.metrics[1]["mAP50"] != 0.25 {
		t.Errorf("metric lines = %v", res.metrics)
	}
	// The script's last metrics are the run's final metrics.
	wantFinal := map[string]any{"loss": 0.71, "mAP50": 0.25}
	if diff := cmp.Diff(map[string]any{"vp": "final", "metrics": wantFinal}, res.final); diff != "" {
		t.Errorf("final line (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantFinal, readJSON(t, filepath.Join(out, "metrics.json"))); diff != "" {
		t.Errorf("metrics.json (-want +got):\n%s", diff)
	}
	if card := readJSON(t, filepath.Join(out, "model_card.json")); card["framework"] != "custom" || card["source"] != filepath.Base(src) {
		t.Errorf("model_card.json = %v", card)
	}
	cfg, err := os.ReadFile(filepath.Join(out, "train.yaml"))
	if err != nil || !strings.Contains(string(cfg), "epochs: 2\nbatch: 4\nlr: 0.001\ndata: /data/coco\nanchors: 10,13") {
		t.Errorf("filled config: %v\n%s", err, cfg)
	}
	if w, err := os.ReadFile(filepath.Join(out, "weights", "best.pt")); err != nil || string(w) != "weights" {
		t.Errorf("weights/best.pt = %q, %v", w, err)
	}
	if !strings.Contains(res.stderr, "some other chatter") {
		t.Error("the model's own log did not reach stderr")
	}
	hp := fmt.Sprintf(`{"epochs":1,"batchSize":4,"learningRate":0.001,"extra":{"sourceDir":%q}}`, src)

	// A metric named like a reserved field of metric lines is refused.
	describe(`Epoch (?P<epoch>\d+)/\d+ box_loss=(?P<loss>[0-9.]+) lr=(?P<time>[0-9.]+)`)
	res = runSDK(t, nil, "--adapter", "custom", "--model", "yolov7", "--dataset", "/d", "--output", t.TempDir(), "--hyperparameters", hp)
	if res.code != 3 || !strings.Contains(res.stderr, "rules[0]: 'time' is reserved") {
		t.Errorf("a metric named time: exit %d, %q", res.code, res.stderr)
	}

	// A template variable nobody gives is an error naming it.
	describe(`Epoch (?P<epoch>\d+)`)
	write(t, src, map[string]string{"configs/train.yaml.tmpl": "x: ${nonesuch}\n"})
	res = runSDK(t, nil, "--adapter", "custom", "--model", "yolov7", "--dataset", "/d", "--output", t.TempDir(), "--hyperparameters", hp)
	if res.code != 3 || !strings.Contains(res.stderr, "no value for ${nonesuch}") {
		t.Errorf("missing template value: exit %d, %q", res.code, res.stderr)
	}
}

func TestInt_COCOToYOLO(t *testing.T) {
	testsupport.Integration(t)
	dir, out := t.TempDir(), t.TempDir()
	write(t, dir, map[string]string{
		"train/a.jpg": "x",
		"train/b.jpg": "x",
		"annotations/instances_train.json": `{
 "images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100}, {"id": 2, "file_name": "b.jpg", "width": 10, "height": 10}],
 "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
 "annotations": [{"image_id": 1, "category_id": 7, "bbox": [50, 25, 100, 50]}, {"image_id": 1, "category_id": 3, "bbox": [0, 0, 20, 10], "iscrowd": 1}]}`,
	})
	cmd := exec.Command(python, "-c", "import sys; from vp_sdk.formats import coco_to_yolo; print(coco_to_yolo(sys.argv[1], sys.argv[2]))", dir, out)
	cmd.Env = append(os.Environ(), pythonPath(t))
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("coco_to_yolo: %v\n%s", err, res)
	}
	label, err := os.ReadFile(filepath.Join(out, "labels", "train", "a.txt"))
	if err != nil || string(label) != "1 0.500000 0.500000 0.500000 0.500000\n" {
		t.Errorf("a.txt = %q, %v (dog is class 1: categories are ordered by id; the crowd box is skipped)", label, err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "labels", "train", "b.txt")); err != nil || len(b) != 0 {
		t.Errorf("b.txt = %q, %v; want an empty label file", b, err)
	}
	data, err := os.ReadFile(filepath.Join(out, "data.yaml"))
	if err != nil || !strings.Contains(string(data), "train: images/train\nval: images/train\nnames:\n  0: \"cat\"\n  1: \"dog\"") {
		t.Errorf("data.yaml: %v\n%s", err, data)
	}
	if target, err := os.Readlink(filepath.Join(out, "images", "train", "a.jpg")); err != nil || target != filepath.Join(dir, "train", "a.jpg") {
		t.Errorf("image link %q, %v", target, err)
	}
}
