package executor

import (
	"context"
	"github.com/vision-platform/vp/internal/dataset"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/testsupport"
)

// BenchmarkAgentOverhead runs the CPU training of the tests (resnet18, two
// classes of 16 PNGs, 2 epochs) through the agent with the process
// executor (dataset from MinIO, events to a sink, outputs to MinIO), and the
// adapter straight on the same files, in the same run.
func BenchmarkAgentOverhead(b *testing.B) {
	testsupport.RequireTorch(b)
	root := testsupport.ModuleRoot(b)
	m := testsupport.StartMinIO(b)
	m.Bucket(b, "datasets")
	m.Bucket(b, "runs")
	data := b.TempDir()
	testsupport.MakeImageFolder(b, data, 16, 32)
	manifest, digest, err := dataset.ManifestOf(context.Background(), data)
	if err != nil {
		b.Fatal(err)
	}
	m.PutDir(b, data, "datasets", "cats/v1/")
	putManifest(b, m, "datasets", "cats/v1/manifest.json", manifest)
	sink := testsupport.NewSink(b, nil)
	pythonPath := "PYTHONPATH=" + filepath.Join(root, "images", "python")
	hp := events.Hyperparameters{Epochs: 2, BatchSize: 8, LearningRate: 0.01, ImageSize: 32, Seed: 1}
	p, err := NewProcess(context.Background(), buildAgent(b), b.TempDir(), NvidiaSMI, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	p.Env = []string{"VP_S3_ENDPOINT=" + m.Endpoint, "VP_S3_ACCESS_KEY=" + testsupport.MinIOUser, "VP_S3_SECRET_KEY=" + testsupport.MinIOPassword,
		"K_SINK=" + sink.URL, "VP_PYTHON=" + testsupport.Python, pythonPath, "OMP_NUM_THREADS=2"}
	var straight, through time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		cmd := exec.Command(testsupport.Python, "-m", "vp_sdk.run", "--adapter", "torchvision", "--model", "resnet18", "--dataset", data,
			"--output", b.TempDir(), "--hyperparameters", `{"epochs":2,"batchSize":8,"learningRate":0.01,"imageSize":32,"seed":1}`)
		cmd.Env = append(os.Environ(), pythonPath, "OMP_NUM_THREADS=2")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("adapter: %v\n%s", err, out)
		}
		straight += time.Since(start)

		id := "bench-" + time.Now().Format("150405.000000")
		mref := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
		ev, err := events.New(context.Background(), "/bench", events.RunStartedData{
			Job: events.JobRequestedData{ID: events.JobID(digest, mref, hp), Dataset: events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: digest,
				Task: "classification", Format: "imagefolder"}, Model: mref, Hyperparameters: hp},
			RunID: id, Image: "local", Executor: Process, Output: "s3://runs/" + id + "/",
		})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := p.Launch(context.Background(), Run{ID: id, Event: ev}); err != nil {
			b.Fatal(err)
		}
		if code, err := p.Wait(context.Background(), id); err != nil || code != 0 {
			b.Fatalf("agent exited %d (%v)", code, err)
		}
		through += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(straight.Seconds()/n, "adapter-straight-s")
	b.ReportMetric(through.Seconds()/n, "through-agent-s")
	b.ReportMetric((through-straight).Seconds()/n, "overhead-s")
}
