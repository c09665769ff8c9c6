package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/minio/minio-go/v7"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/internal/weights"
)

// pretrainedRequest is a one-epoch run of torchvision/resnet18 that asks
// for pretrained weights.
func (e *env) pretrainedRequest(t *testing.T, runID string) event.Event {
	t.Helper()
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 8, LearningRate: 0.01, ImageSize: 32, Seed: 1, Pretrained: true}
	mref := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	job := events.JobRequestedData{ID: events.JobID(e.ref.Digest, mref, hp), Dataset: e.ref, Model: mref, Hyperparameters: hp}
	ev, err := events.New(context.Background(), "/test/gpu-runner", events.RunStartedData{
		Job: job, RunID: runID, Image: "local", Executor: "process", Output: "s3://runs/" + runID + "/",
	})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestInt_RunPretrainedWeights: a pretrained job starts from its model's
// imported weights: the agent fetches them, checked, and passes them to the
// SDK, whose model card shows the imported tensor is where training began.
// Without imported weights the adapter tries its hub (and fails offline,
// as before); a corrupted download fails the run before any training.
func TestInt_RunPretrainedWeights(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	e := setup(t)
	e.m.Bucket(t, weights.DefaultBucket)
	ctx := context.Background()
	store := objstore.FromMinIO(e.m.Client)
	file := filepath.Join(t.TempDir(), "resnet18-imported.pth")
	save := exec.Command(testsupport.Python, "-c", `import sys, torch, torchvision
m = torchvision.models.resnet18(weights=None)
with torch.no_grad():
    m.conv1.weight.fill_(0.123)
torch.save(m.state_dict(), sys.argv[1])`, file)
	if out, err := save.CombinedOutput(); err != nil {
		t.Fatalf("saving the state dict: %v\n%s", err, out)
	}
	rec, err := weights.Import(ctx, store, events.ModelRef{Framework: "torchvision", Name: "resnet18"}, file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	// An empty TORCH_HOME: a hub download cannot succeed here.
	cfg.Env = append(cfg.Env, "TORCH_HOME="+t.TempDir())

	fin, err := Run(ctx, cfg, e.pretrainedRequest(t, "run-pretrained"))
	if err != nil || fin.Status != events.StatusSucceeded {
		t.Fatalf("Run() = %+v, %v", fin, err)
	}
	log := readObject(t, e.m.Client, fin.Log)
	for _, want := range []string{
		"vp-agent: pretrained weights: " + rec.Object.String() + " (resnet18-imported.pth, ",
		"sha256 " + rec.SHA256,
		"vp_sdk: weights resnet18-imported.pth: loaded 120 tensors into torchvision's resnet18; kept out of the load (the classification head, sized for other classes): fc.weight, fc.bias",
		"vp_sdk: starting from weights resnet18-imported.pth: conv1.weight[0] = 0.123, mean 0.123",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("run log lacks %q:\n%s", want, log)
		}
	}
	var card struct {
		Initial struct {
			Source, File, Tensor string
			First, Mean          float64
		} `json:"initialWeights"`
	}
	if err := json.Unmarshal([]byte(readObject(t, e.m.Client, "s3://runs/run-pretrained/model_card.json")), &card); err != nil {
		t.Fatal(err)
	}
	if in := card.Initial; in.Source != "file" || in.File != "resnet18-imported.pth" || in.Tensor != "conv1.weight" ||
		math.Abs(in.First-0.123) > 1e-6 || math.Abs(in.Mean-0.123) > 1e-6 {
		t.Errorf("model card initialWeights = %+v; want conv1.weight at 0.123, the imported tensor", in)
	}

	// No imported weights (another bucket): the adapter tries its hub, as
	// before the store existed, and says why it cannot.
	noWeights := cfg
	noWeights.WorkDir = t.TempDir()
	noWeights.WeightsBucket = "elsewhere"
	fin, err = Run(ctx, noWeights, e.pretrainedRequest(t, "run-hub"))
	if err != nil {
		t.Fatal(err)
	}
	log = readObject(t, e.m.Client, fin.Log)
	if fin.Status != events.StatusFailed || !strings.Contains(log, "vp-agent: no imported weights for torchvision/resnet18 in s3://elsewhere/: the adapter loads pretrained weights from its model hub") ||
		!strings.Contains(fin.LogTail, "pretrained weights for resnet18 cannot be loaded") {
		t.Errorf("Run() without imported weights = status %q reason %q\n%s", fin.Status, fin.Reason, log)
	}

	// A corrupted object: refused, the adapter never starts.
	bad := bytes.Repeat([]byte{7}, int(rec.Size))
	if _, err := e.m.Client.PutObject(ctx, weights.DefaultBucket, rec.Key, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	corrupt := cfg
	corrupt.WorkDir = t.TempDir()
	fin, err = Run(ctx, corrupt, e.pretrainedRequest(t, "run-corrupt"))
	if err != nil {
		t.Fatal(err)
	}
	if fin.Status != events.StatusFailed || !strings.HasPrefix(fin.Reason, "pretrained weights: ") || !strings.Contains(fin.Reason, "sha256 mismatch") {
		t.Errorf("Run() with corrupted weights = status %q reason %q", fin.Status, fin.Reason)
	}
	if entries, err := os.ReadDir(filepath.Join(corrupt.WorkDir, "pretrained")); err != nil || len(entries) != 0 {
		t.Errorf("a refused download left %v (%v)", entries, err)
	}
	if strings.Contains(readObject(t, e.m.Client, fin.Log), "vp_sdk") {
		t.Error("the adapter ran after a refused download")
	}
}
