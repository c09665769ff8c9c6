package up

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

// platform is a vp up of a test.
type platform struct {
	c      Config
	cancel context.CancelFunc
	done   chan error
	out    *testsupport.SyncBuffer
	logs   *testsupport.SyncBuffer
	mc     *miniogo.Client
	ledger *ledger.Ledger
}

// testConfig is a vp up on free ports in t's folders, with the agent built
// from this tree and a layer cache kept across test runs.
func testConfig(t testing.TB, dataDir string) Config {
	t.Helper()
	root := testsupport.ModuleRoot(t)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		DataDir: dataDir, BrokerAddr: testsupport.FreeAddr(t), DisplayAddr: testsupport.FreeAddr(t),
		RegistryAddr: testsupport.FreeAddr(t), MinIOAddr: testsupport.FreeAddr(t), MinIOConsoleAddr: testsupport.FreeAddr(t),
		MinIOBinary: testsupport.MinIOBinary(t), FunctionsPort: -1,
		Specs: filepath.Join(root, "images", "frameworks"), SDK: filepath.Join(root, "images", "python"),
		ImageCache: filepath.Join(home, ".cache", "vision-platform", "test-images"),
		Agent:      testsupport.BuildAgent(t), Python: testsupport.Python,
	}
}

// startPlatform runs vp up with c until the test ends (or stop), and
// returns once MinIO is up and the summary printed.
func startPlatform(t testing.TB, c Config) *platform {
	t.Helper()
	p := &platform{c: c, done: make(chan error, 1), out: &testsupport.SyncBuffer{}, logs: &testsupport.SyncBuffer{}}
	p.c.Out = p.out
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- Run(ctx, p.c, zerolog.New(p.logs)) }()
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.out.String(), "Vision Platform is up") {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("vp up ended at start: %v\n%s", err, p.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("vp up not up within 60 s:\n%s", p.logs.String())
		}
	}
	b, err := os.ReadFile(filepath.Join(c.DataDir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var creds Credentials
	if err := json.Unmarshal(b, &creds); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.out.String(), creds.MinIOPassword) || !strings.Contains(p.out.String(), c.BrokerAddr) {
		t.Errorf("the summary does not give the MinIO credentials and the broker's address:\n%s", p.out.String())
	}
	p.mc, err = miniogo.New(c.MinIOAddr, &miniogo.Options{Creds: credentials.NewStaticV4(creds.MinIOUser, creds.MinIOPassword, "")})
	if err != nil {
		t.Fatal(err)
	}
	p.ledger = ledger.New(objstore.FromMinIO(p.mc), ledger.DefaultBucket)
	return p
}

func (p *platform) stop(t testing.TB) {
	t.Helper()
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("vp up ended with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("vp up did not stop within 60 s")
	}
}

// put uploads a file to the datasets bucket.
func (p *platform) put(t testing.TB, key string, data []byte) {
	t.Helper()
	if _, err := p.mc.PutObject(context.Background(), DatasetsBucket, key, bytes.NewReader(data), int64(len(data)), miniogo.PutObjectOptions{}); err != nil {
		t.Fatalf("uploading %s: %v", key, err)
	}
}

// upload puts every file of dir under prefix, then the dataset.yaml
// manifest when one is given (the manifest goes last: a dataset is complete
// when it lands).
func (p *platform) upload(t testing.TB, dir, prefix, manifest string) {
	t.Helper()
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		p.put(t, prefix+filepath.ToSlash(rel), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if manifest != "" {
		p.put(t, prefix+"dataset.yaml", []byte(manifest))
	}
}

// dataset waits for the ledger's status of the dataset at prefix.
func (p *platform) dataset(t testing.TB, prefix string, cond func(ledger.DatasetStatus) bool) ledger.DatasetStatus {
	t.Helper()
	var s ledger.DatasetStatus
	testsupport.Eventually(t, 60*time.Second, "the dataset at "+prefix+" in the ledger", func() bool {
		var err error
		s, err = p.ledger.Dataset(context.Background(), DatasetsBucket, prefix)
		return err == nil && cond(s)
	})
	return s
}

// job waits for a job to end and returns its status.
func (p *platform) job(t testing.TB, id string) ledger.JobStatus {
	t.Helper()
	var s ledger.JobStatus
	ok := false
	deadline := time.Now().Add(4 * time.Minute)
	for !ok && time.Now().Before(deadline) {
		var err error
		s, err = p.ledger.Job(context.Background(), id)
		ok = err == nil && ledger.Terminal(s.State)
		time.Sleep(100 * time.Millisecond)
	}
	if !ok {
		t.Fatalf("job %s did not end within 4 minutes (state %q)\n%s", id, s.State, tail(p.logs.String(), 40))
	}
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

const trainBlock = `train:
  model: torchvision/resnet18
  hyperparameters: {epochs: 1, batchSize: 8, learningRate: 0.01, imageSize: 32, seed: %d}
  resources: {gpus: 0, executor: process}
`

func manifest(name string, seed int, extra string) string {
	return fmt.Sprintf("name: %s\ntask: classification\nformat: imagefolder\n", name) + fmt.Sprintf(trainBlock, seed) + extra
}

// types lists the short types of a job's timeline, in order.
func types(s ledger.JobStatus) []string {
	var out []string
	for _, e := range s.Timeline {
		out = append(out, events.Type(e.Type).Short())
	}
	return out
}

// TestInt_Pipeline: a dataset put in MinIO trains a model with nobody
// pressing a button, through the broker, the five functions and the process
// executor (real CPU training with Debian's torch); the failure paths end
// where they should.
func TestInt_Pipeline(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	p := startPlatform(t, testConfig(t, t.TempDir()))
	ctx := context.Background()

	// The happy path.
	cats := t.TempDir()
	testsupport.MakeImageFolder(t, cats, 8, 32)
	p.upload(t, cats, "cats/", manifest("cats", 1, ""))
	ds := p.dataset(t, "cats/", func(s ledger.DatasetStatus) bool { return len(s.Jobs) == 1 })
	job := p.job(t, ds.Jobs[0])
	if job.State != ledger.StateSucceeded {
		t.Fatalf("job %s = %s (%s)\nlog tail: %s\n%s", job.JobID, job.State, job.Reason, job.LogTail, tail(p.logs.String(), 60))
	}
	if want := []string{"job.requested", "image.built", "run.started", "run.finished"}; !slices.Equal(types(job), want) {
		t.Errorf("timeline = %v, want %v", types(job), want)
	}
	if !strings.Contains(job.Image, "/vp/torchvision-cpu@sha256:") || job.Executor != "process" || job.Dataset.Digest != ds.Digest {
		t.Errorf("job = image %s, executor %s, dataset %s; want the torchvision-cpu image, process, digest %s", job.Image, job.Executor, job.Dataset.Digest, ds.Digest)
	}
	names := map[string]bool{}
	for _, a := range job.Artifacts {
		names[a.Name] = true
		u, err := objstore.ParseURI(a.URI)
		if err != nil {
			t.Fatal(err)
		}
		info, err := p.mc.StatObject(ctx, u.Bucket, u.Key, miniogo.StatObjectOptions{})
		if err != nil || info.Size != a.Size {
			t.Errorf("artifact %s: %v (size %d, want %d)", a.URI, err, info.Size, a.Size)
		}
	}
	if !names["metrics.json"] || !slices.ContainsFunc(job.Artifacts, func(a events.Artifact) bool { return strings.HasPrefix(a.Name, "weights/") }) {
		t.Errorf("artifacts = %v, want weights and metrics.json", names)
	}
	models, err := p.ledger.Models(ctx, &events.ModelRef{Framework: "torchvision", Name: "resnet18"})
	if err != nil || len(models) != 1 || models[0].Dataset.Digest != ds.Digest {
		t.Errorf("model index = %+v, %v", models, err)
	}

	// Identical content under another prefix trains nothing new.
	p.upload(t, cats, "cats-again/", manifest("cats", 1, ""))
	again := p.dataset(t, "cats-again/", func(s ledger.DatasetStatus) bool { return s.State == "uploaded" })
	if again.Digest != ds.Digest {
		t.Fatalf("the same content has digest %s under another prefix, want %s", again.Digest, ds.Digest)
	}

	// A broken layout ends in dataset.rejected naming the problems.
	broken := t.TempDir()
	testsupport.MakeImageFolder(t, broken, 4, 16)
	if err := os.WriteFile(filepath.Join(broken, "train", "notes.txt"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(broken, "train", "dog")); err != nil {
		t.Fatal(err)
	}
	p.upload(t, broken, "broken/", manifest("broken", 2, ""))
	rej := p.dataset(t, "broken/", func(s ledger.DatasetStatus) bool { return s.State == "rejected" })
	if len(rej.Reasons) == 0 || !slices.ContainsFunc(rej.Reasons, func(r events.FieldError) bool { return strings.Contains(r.Field, "notes.txt") }) {
		t.Errorf("rejection reasons = %+v, want one naming train/notes.txt", rej.Reasons)
	}

	// A training that fails ends in run.finished failed with the log's tail.
	corrupt := t.TempDir()
	testsupport.MakeImageFolder(t, corrupt, 4, 16)
	if err := os.WriteFile(filepath.Join(corrupt, "train", "cat", "0.png"), []byte("not a png at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.upload(t, corrupt, "corrupt/", manifest("corrupt", 3, ""))
	cds := p.dataset(t, "corrupt/", func(s ledger.DatasetStatus) bool { return len(s.Jobs) == 1 })
	if failed := p.job(t, cds.Jobs[0]); failed.State != ledger.StateFailed || failed.LogTail == "" {
		t.Errorf("a training on a corrupt image ended %s with log tail %q, want failed with the tail", failed.State, failed.LogTail)
	}

	// Another system posts a binary-mode job.requested with its own source.
	j := events.JobRequestedData{Dataset: *job.Dataset, Model: events.ModelRef{Framework: "torchvision", Name: "resnet18"},
		Hyperparameters: events.Hyperparameters{Epochs: 1, BatchSize: 4, LearningRate: 0.02, ImageSize: 32}, RequestedBy: "another-system"}
	j.ID = events.JobID(j.Dataset.Digest, j.Model, j.Hyperparameters)
	e, err := events.New(ctx, "//other.example/scheduler", j)
	if err != nil {
		t.Fatal(err)
	}
	ingress := "http://" + p.c.BrokerAddr + "/default/default"
	if code, body := postEvent(t, ingress, e); code != http.StatusAccepted {
		t.Fatalf("posting job.requested from another system = %d %s", code, body)
	}
	if other := p.job(t, j.ID); other.State != ledger.StateSucceeded || other.RequestedBy != "another-system" {
		t.Errorf("the other system's job = %s (%s), requested by %q", other.State, other.Reason, other.RequestedBy)
	}

	// A job for a model the catalog does not have is refused where it enters.
	j.Model.Name = "resnet9000"
	j.ID = events.JobID(j.Dataset.Digest, j.Model, j.Hyperparameters)
	if e, err = events.New(ctx, "//other.example/scheduler", j); err != nil {
		t.Fatal(err)
	}
	if code, body := postEvent(t, ingress, e); code != http.StatusBadRequest || !strings.Contains(body, "data.model.name") {
		t.Errorf("posting a job for an unknown model = %d %s, want 400 naming data.model.name", code, body)
	}

	// Nothing trained the re-uploaded content again.
	jobs, err := p.ledger.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 {
		t.Errorf("ledger has %d jobs, want 3 (cats, corrupt, the other system's): %v", len(jobs), jobs)
	}
}

// postEvent posts e in binary mode and returns the status and body.
func postEvent(t testing.TB, url string, e event.Event) (int, string) {
	t.Helper()
	status, _, body := testsupport.Deliver(t, url, e)
	return status, body
}

// TestInt_PipelineRestart stops vp up while a job is under way and starts
// it again on the same data: the job still runs to its end, exactly once.
// (The functions run in vp up's process: stopping it is how a function is
// killed mid-event here; the broker then delivers the event again.)
func TestInt_PipelineRestart(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	data := t.TempDir()
	c := testConfig(t, data)
	p := startPlatform(t, c)
	dir := t.TempDir()
	testsupport.MakeImageFolder(t, dir, 8, 32)
	// Long enough (20 epochs) to be stopped while it trains.
	p.upload(t, dir, "dogs/", strings.Replace(manifest("dogs", 7, ""), "epochs: 1,", "epochs: 20,", 1))
	ds := p.dataset(t, "dogs/", func(s ledger.DatasetStatus) bool { return len(s.Jobs) == 1 })
	var before ledger.JobStatus
	testsupport.Eventually(t, 60*time.Second, "the run to start", func() bool {
		var err error
		before, err = p.ledger.Job(context.Background(), ds.Jobs[0])
		return err == nil && before.Started
	})
	if ledger.Terminal(before.State) {
		t.Fatalf("the job ended (%s) before vp up could be stopped: make its training longer", before.State)
	}
	p.stop(t)

	p = startPlatform(t, c)
	job := p.job(t, ds.Jobs[0])
	if !strings.Contains(p.logs.String(), "interrupted run relaunched") {
		t.Errorf("the second vp up did not relaunch the interrupted run:\n%s", tail(p.logs.String(), 30))
	}
	if job.State != ledger.StateSucceeded {
		t.Fatalf("after a restart the job = %s (%s)\n%s", job.State, job.Reason, tail(p.logs.String(), 60))
	}
	evs, err := p.ledger.Events(context.Background(), job.JobID)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range evs {
		count[events.Type(e.Type()).Short()]++
	}
	if count["run.finished"] != 1 || count["run.started"] != 1 || count["job.requested"] != 1 {
		t.Errorf("events of the job after a restart = %v, want one job.requested, one run.started, one run.finished", count)
	}
	jobs, err := p.ledger.Jobs(context.Background())
	if err != nil || len(jobs) != 1 {
		t.Errorf("ledger jobs = %v, %v; want the one job", jobs, err)
	}
}
