package gpurunner_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/fn"
	gpurunner "github.com/vision-platform/vp/functions/gpu-runner"
	"github.com/vision-platform/vp/functions/gpu-runner/executor"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

// reference is the framework image every test job's image.built names.
var reference = "127.0.0.1:5000/vp/torchvision@sha256:" + strings.Repeat("c", 64)

// jobOn is a job training resnet18 on ref for epochs, told apart by seed.
func jobOn(ref events.DatasetRef, seed int64, epochs int, res events.Resources) events.JobRequestedData {
	hp := events.Hyperparameters{Epochs: epochs, BatchSize: 8, LearningRate: 0.01, ImageSize: 32, Seed: seed}
	m := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	return events.JobRequestedData{ID: events.JobID(ref.Digest, m, hp), Dataset: ref, Model: m, Hyperparameters: hp, Resources: res}
}

// built is the image-builder's image.built for job.
func built(t *testing.T, job events.JobRequestedData) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), "/test/image-builder", events.ImageBuiltData{
		Job: job.ID, Request: job, Framework: "torchvision", Reference: reference, Layers: []events.Layer{}, CacheHit: true,
		Adapter: events.AdapterRef{Name: "torchvision", Model: job.Model.Name},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// cancelled is a job.cancelled for job.
func cancelled(t *testing.T, job events.JobRequestedData) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), "/test", events.JobCancelledData{Job: job.ID, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func runIDOf(t *testing.T, job events.JobRequestedData) string {
	t.Helper()
	id, err := gpurunner.RunID(job.ID)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// storeConfig is the function's settings for MinIO m and sink.
func storeConfig(m *testsupport.MinIO, sink *testsupport.Sink) map[string]string {
	return map[string]string{
		"VP_S3_ENDPOINT": m.Endpoint, "VP_S3_ACCESS_KEY": testsupport.MinIOUser, "VP_S3_SECRET_KEY": testsupport.MinIOPassword,
		"K_SINK": sink.URL, "VP_EXECUTOR": "process",
	}
}

func start(t *testing.T, cfg map[string]string, opts ...gpurunner.Option) (*gpurunner.Function, *executor.ProcessExecutor) {
	t.Helper()
	f := gpurunner.New(append([]gpurunner.Option{gpurunner.WithLogger(zerolog.New(zerolog.NewTestWriter(t)))}, opts...)...)
	if err := f.Start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	p, ok := f.Executor().(*executor.ProcessExecutor)
	if !ok {
		t.Fatalf("executor = %T, want the process executor", f.Executor())
	}
	return f, p
}

// finished decodes the run.finished events the sink got for run.
func finished(t *testing.T, sink *testsupport.Sink, run string) []events.RunFinishedData {
	t.Helper()
	var out []events.RunFinishedData
	for _, e := range sink.OfType(string(events.RunFinished)) {
		var d events.RunFinishedData
		if err := events.DecodeInto(e, &d); err != nil {
			t.Fatal(err)
		}
		if d.RunID == run {
			out = append(out, d)
		}
	}
	return out
}

// decode decodes a reply of type p's.
func decode(t *testing.T, reply *event.Event, p events.Payload) {
	t.Helper()
	if reply == nil {
		t.Fatalf("no reply, want %s", p.EventType())
	}
	if err := events.DecodeInto(*reply, p); err != nil {
		t.Fatal(err)
	}
}

// sameTrace reports whether two events' traceparents share a trace id.
func sameTrace(a, b event.Event) bool {
	ta, _ := a.Extensions()[events.ExtTraceparent].(string)
	tb, _ := b.Extensions()[events.ExtTraceparent].(string)
	pa, pb := strings.Split(ta, "-"), strings.Split(tb, "-")
	return len(pa) == 4 && len(pb) == 4 && pa[1] == pb[1]
}

// TestInt_WhatIsNotLaunched: the jobs the ledger or a cancel rule out, and
// the runs that cannot be launched, with a stand-in agent that only
// records that it started; and the queue VP_MAX_RUNS bounds.
func TestInt_WhatIsNotLaunched(t *testing.T) {
	testsupport.Integration(t)
	ctx := context.Background()
	m := testsupport.StartMinIO(t)
	m.Bucket(t, ledger.DefaultBucket)
	sink := testsupport.NewSink(t, events.Validate)
	cfg := storeConfig(m, sink)
	cfg["VP_AGENT"] = script(t, "stand-in-agent", `# args: --event FILE --workdir DIR
dir=$4
echo start >> "$dir/starts"
trap 'exit 143' TERM
while [ ! -e "$dir/release" ]; do sleep 0.05; done
`)
	cfg["VP_WORK_DIR"] = t.TempDir()
	cfg["VP_MAX_RUNS"] = "2"
	reg := prometheus.NewRegistry()
	f, p := start(t, cfg, gpurunner.WithMetrics(reg))
	url := serve(t, f)
	led := ledger.New(objstore.FromMinIO(m.Client), ledger.DefaultBucket)
	ref := events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: "sha256:" + strings.Repeat("a", 64), Task: events.TaskClassification, Format: events.FormatImageFolder}
	notLaunched := func(desc string, job events.JobRequestedData) {
		t.Helper()
		if status, reply := post(t, url, built(t, job)); status/100 != 2 || reply != nil {
			t.Errorf("%s: image.built answered %d with %v, want 2xx and nothing", desc, status, reply)
		}
		if st, _ := p.Status(runIDOf(t, job)); st != "unknown" {
			t.Errorf("%s: the run is %s, want unknown (never launched)", desc, st)
		}
	}

	// The ledger says the job's run started (this runner restarted since).
	startedJob := jobOn(ref, 1, 1, events.Resources{})
	rs, err := events.New(ctx, "/elsewhere", events.RunStartedData{Job: startedJob, RunID: runIDOf(t, startedJob), Image: reference,
		Executor: executor.Process, Output: "s3://runs/" + runIDOf(t, startedJob) + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := led.Record(ctx, rs); err != nil {
		t.Fatal(err)
	}
	notLaunched("started in the ledger", startedJob)

	// The ledger says the job was cancelled before it ran.
	cancelledJob := jobOn(ref, 2, 1, events.Resources{})
	if err := led.Record(ctx, cancelled(t, cancelledJob)); err != nil {
		t.Fatal(err)
	}
	notLaunched("cancelled in the ledger", cancelledJob)

	// The cancel reached this runner before the image was built (and
	// before the run-recorder recorded it).
	early := jobOn(ref, 3, 1, events.Resources{})
	if status, reply := post(t, url, cancelled(t, early)); status/100 != 2 || reply != nil {
		t.Errorf("job.cancelled of a job with no run answered %d with %v, want 2xx and nothing", status, reply)
	}
	notLaunched("cancelled first", early)

	// Runs that cannot be launched end as failed, at once.
	for _, c := range []struct {
		desc   string
		job    events.JobRequestedData
		reason string
	}{
		{"another executor", jobOn(ref, 4, 1, events.Resources{Executor: executor.Docker}), "the job asks for the docker executor"},
		{"too many GPUs", jobOn(ref, 5, 1, events.Resources{GPUs: 1000}), "not enough GPUs"},
	} {
		in := built(t, c.job)
		status, reply := post(t, url, in)
		var fin events.RunFinishedData
		decode(t, reply, &fin)
		if status/100 != 2 || fin.RunID != runIDOf(t, c.job) || fin.Status != events.StatusFailed || !strings.Contains(fin.Reason, c.reason) {
			t.Errorf("%s: answered %d with run %s %s (%q), want run %s failed saying %q", c.desc, status, fin.RunID, fin.Status, fin.Reason, runIDOf(t, c.job), c.reason)
		}
		if !sameTrace(in, *reply) || reply.Source() != gpurunner.Source {
			t.Errorf("%s: run.finished from %s, not in image.built's trace", c.desc, reply.Source())
		}
	}

	// An image.built whose job is not its own is refused.
	a, b := jobOn(ref, 6, 1, events.Resources{}), jobOn(ref, 7, 1, events.Resources{})
	mixed, err := events.New(ctx, "/test", events.ImageBuiltData{Job: a.ID, Request: b, Framework: "torchvision", Reference: reference, Layers: []events.Layer{}})
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := post(t, url, mixed); status != http.StatusBadRequest {
		t.Errorf("image.built of job a carrying job b answered %d, want 400", status)
	}

	// VP_MAX_RUNS=2: two run, the third waits; a redelivery starts nothing;
	// cancelling the queued one ends it (the executor reports it), the
	// running one gets SIGTERM.
	queue := []events.JobRequestedData{jobOn(ref, 10, 1, events.Resources{}), jobOn(ref, 11, 1, events.Resources{}), jobOn(ref, 12, 1, events.Resources{})}
	for _, job := range queue {
		var rs events.RunStartedData
		_, reply := post(t, url, built(t, job))
		decode(t, reply, &rs)
	}
	var states []string
	for _, job := range queue {
		st, _ := p.Status(runIDOf(t, job))
		states = append(states, st)
	}
	if want := []string{"running", "running", "queued"}; !cmp.Equal(states, want) {
		t.Errorf("with VP_MAX_RUNS=2 the runs are %v, want %v", states, want)
	}
	first := built(t, queue[0])
	_, again := post(t, url, first)
	if _, reply := post(t, url, first); again == nil || reply == nil || reply.ID() != again.ID() {
		t.Errorf("a redelivered image.built answered %v, want the same run.started", reply)
	}
	if active, _ := p.Table(); active != 3 {
		t.Errorf("the executor holds %d runs after redeliveries, want 3", active)
	}
	dir := cfg["VP_WORK_DIR"]
	if b, err := os.ReadFile(filepath.Join(dir, runIDOf(t, queue[0]), "starts")); err != nil || string(b) != "start\n" {
		t.Errorf("the first run's agent started %q (%v), want once", b, err)
	}
	for _, job := range []events.JobRequestedData{queue[2], queue[0]} {
		if status, reply := post(t, url, cancelled(t, job)); status/100 != 2 || reply != nil {
			t.Errorf("job.cancelled answered %d with %v, want 2xx and nothing", status, reply)
		}
	}
	if got := finished(t, sink, runIDOf(t, queue[2])); len(got) != 1 || got[0].Status != events.StatusCancelled || got[0].Reason != executor.ReasonCancelledQueued {
		t.Errorf("the queued run's run.finished = %+v, want one, cancelled while queued", got)
	}
	if code, err := p.Wait(ctx, runIDOf(t, queue[0])); code != 143 || err != nil {
		t.Errorf("the cancelled running run exited %d (%v), want 143", code, err)
	}
	if err := os.WriteFile(filepath.Join(dir, runIDOf(t, queue[1]), "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(ctx, runIDOf(t, queue[1])); code != 0 || err != nil {
		t.Errorf("the released run exited %d (%v), want 0", code, err)
	}
	// A cancel of a run that has ended stops nothing.
	if status, reply := post(t, url, cancelled(t, queue[1])); status/100 != 2 || reply != nil {
		t.Errorf("job.cancelled of an ended run answered %d with %v, want 2xx and nothing", status, reply)
	}

	const metrics = `
# HELP vp_gpu_runner_runs_total Runs handled by the gpu-runner, by executor and result: launched, duplicate, cancelled_first, failed, retried, cancelled, nothing_to_stop.
# TYPE vp_gpu_runner_runs_total counter
vp_gpu_runner_runs_total{executor="process",result="cancelled"} 2
vp_gpu_runner_runs_total{executor="process",result="cancelled_first"} 2
vp_gpu_runner_runs_total{executor="process",result="duplicate"} 3
vp_gpu_runner_runs_total{executor="process",result="failed"} 2
vp_gpu_runner_runs_total{executor="process",result="launched"} 3
vp_gpu_runner_runs_total{executor="process",result="nothing_to_stop"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(metrics), "vp_gpu_runner_runs_total"); err != nil {
		t.Error(err)
	}
}

// TestLedgerUnreadable: a ledger that cannot be read is a failure the
// broker retries, not a launch.
func TestLedgerUnreadable(t *testing.T) {
	sink := testsupport.NewSink(t, events.Validate)
	cfg := baseConfig(t) // VP_S3_ENDPOINT: nothing listens there
	cfg["K_SINK"] = sink.URL
	f, p := start(t, cfg)
	ref := events.DatasetRef{Bucket: "datasets", Prefix: "x/", Digest: "sha256:" + strings.Repeat("b", 64), Task: events.TaskClassification, Format: events.FormatImageFolder}
	job := jobOn(ref, 1, 1, events.Resources{})
	if _, err := f.Handle(context.Background(), built(t, job)); fn.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("Handle(image.built) with no store = %v (status %d), want 503", err, fn.StatusOf(err))
	}
	if st, _ := p.Status(runIDOf(t, job)); st != "unknown" {
		t.Errorf("the run is %s, want unknown (not launched)", st)
	}
}

// buildAgent builds vp-agent.
func buildAgent(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "vp-agent")
	cmd := exec.Command("go", "build", "-o", out, "github.com/vision-platform/vp/images/agent/cmd/vp-agent")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building vp-agent: %v\n%s", err, msg)
	}
	return out
}

// agentLog is what a run's agent wrote, for failure messages.
func agentLog(p *executor.ProcessExecutor, run string) string {
	b, err := os.ReadFile(filepath.Join(p.WorkDir, run, "agent.log"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// TestInt_RealRuns: image.built in, run.started out, and the real agent
// training resnet18 with Debian's torch on a generated dataset in MinIO,
// reporting to the sink; a redelivery starts nothing; a cancel stops a
// running run.
func TestInt_RealRuns(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	ctx := context.Background()
	t.Setenv("OMP_NUM_THREADS", "2")
	m := testsupport.StartMinIO(t)
	for _, b := range []string{"datasets", gpurunner.DefaultRunsBucket, ledger.DefaultBucket} {
		m.Bucket(t, b)
	}
	data := t.TempDir()
	testsupport.MakeImageFolder(t, data, 8, 32)
	man, err := dataset.BuildManifest(ctx, os.DirFS(data), events.TaskClassification, events.FormatImageFolder)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := man.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m.PutDir(t, data, "datasets", "cats/v1/")
	if _, err := m.Client.PutObject(ctx, "datasets", "cats/v1/"+dataset.ManifestName, bytes.NewReader(manifest), int64(len(manifest)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: dataset.Digest(manifest), Task: events.TaskClassification, Format: events.FormatImageFolder}

	sink := testsupport.NewSink(t, events.Validate)
	cfg := storeConfig(m, sink)
	cfg["VP_AGENT"] = buildAgent(t)
	cfg["VP_WORK_DIR"] = t.TempDir()
	cfg["VP_PYTHON"] = testsupport.Python
	cfg["PYTHONPATH"] = filepath.Join(testsupport.ModuleRoot(t), "images", "python")
	f, p := start(t, cfg)
	url := serve(t, f)

	// A run that succeeds.
	job := jobOn(ref, 1, 1, events.Resources{})
	run := runIDOf(t, job)
	in := built(t, job)
	status, reply := post(t, url, in)
	var rs events.RunStartedData
	decode(t, reply, &rs)
	want := events.RunStartedData{Job: job, RunID: "run-" + strings.TrimPrefix(job.ID, "job-"), Image: reference, Executor: executor.Process,
		Reason: f.Reason(), Output: "s3://runs/" + run + "/", Adapter: events.AdapterRef{Name: "torchvision", Model: "resnet18"}}
	if diff := cmp.Diff(want, rs); diff != "" || status/100 != 2 {
		t.Errorf("image.built answered %d with run.started (-want +got):\n%s", status, diff)
	}
	if f.Reason() == "" || !sameTrace(in, *reply) || reply.Source() != gpurunner.Source {
		t.Errorf("run.started: reason %q, source %s, traceparent %v; want a reason, %s, image.built's trace", f.Reason(), reply.Source(), reply.Extensions()[events.ExtTraceparent], gpurunner.Source)
	}
	if code, err := p.Wait(ctx, run); code != 0 || err != nil {
		t.Fatalf("the agent exited %d (%v)\n%s", code, err, agentLog(p, run))
	}
	fins := finished(t, sink, run)
	if len(fins) != 1 || fins[0].Status != events.StatusSucceeded || len(fins[0].Artifacts) == 0 {
		t.Fatalf("run.finished of %s = %+v, want one, succeeded, with artifacts\n%s", run, fins, agentLog(p, run))
	}
	for _, a := range fins[0].Artifacts {
		if !strings.HasPrefix(a.URI, rs.Output) {
			t.Errorf("artifact %s is at %s, outside the run's output %s", a.Name, a.URI, rs.Output)
		}
	}
	// The same image.built again: the same answer, no second run.
	_, again := post(t, url, in)
	if again == nil || again.ID() != reply.ID() {
		t.Errorf("a redelivered image.built answered %v, want run.started %s again", again, reply.ID())
	}
	if active, remembered := p.Table(); active != 0 || remembered != 1 {
		t.Errorf("after a redelivery the executor holds %d runs and remembers %d, want 0 and 1", active, remembered)
	}
	if n := len(finished(t, sink, run)); n != 1 {
		t.Errorf("the sink got %d run.finished of %s, want 1", n, run)
	}

	// A run cancelled while it trains.
	long := jobOn(ref, 2, 500, events.Resources{})
	lrun := runIDOf(t, long)
	if _, reply := post(t, url, built(t, long)); reply == nil || reply.Type() != string(events.RunStarted) {
		t.Fatalf("image.built of the long job answered %v, want run.started", reply)
	}
	testsupport.Eventually(t, 3*time.Minute, "the long run's first run.progress", func() bool {
		for _, e := range sink.OfType(string(events.RunProgress)) {
			if e.Subject() == lrun {
				return true
			}
		}
		return false
	})
	if status, reply := post(t, url, cancelled(t, long)); status/100 != 2 || reply != nil {
		t.Errorf("job.cancelled answered %d with %v, want 2xx and nothing", status, reply)
	}
	if code, err := p.Wait(ctx, lrun); code != 143 || err != nil {
		t.Errorf("the cancelled agent exited %d (%v), want 143\n%s", code, err, agentLog(p, lrun))
	}
	if fins := finished(t, sink, lrun); len(fins) != 1 || fins[0].Status != events.StatusCancelled {
		t.Errorf("run.finished of the cancelled run = %+v, want one, cancelled", fins)
	}
	if active, remembered := p.Table(); active != 0 || remembered != 2 {
		t.Errorf("the executor holds %d runs and remembers %d, want 0 and 2", active, remembered)
	}
}
