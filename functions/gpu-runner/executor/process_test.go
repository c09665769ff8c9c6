package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/vision-platform/vp/internal/dataset"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/internal/testsupport"
)

// twoGPUs stands in for nvidia-smi on a host with two GPUs: there is no GPU
// on the machines the tests run on.
func twoGPUs(context.Context) ([]string, error) { return []string{"0", "1"}, nil }

// standIn writes a shell script used in place of the agent to test the
// executor's scheduling alone: it records its GPUs and each start, and
// waits for a release file.
func standIn(t *testing.T) string {
	return script(t, "stand-in-agent", `# args: --event FILE --workdir DIR
dir=$4
echo start >> "$dir/starts"
echo "$CUDA_VISIBLE_DEVICES" > "$dir/gpus"
trap 'echo cancelled > "$dir/cancelled"; exit 143' TERM
while [ ! -e "$dir/release" ]; do sleep 0.05; done
`)
}

// runOf is a valid run.started event for id.
func runOf(t *testing.T, id string, gpus int) Run {
	t.Helper()
	digest := "sha256:" + strings.Repeat("d", 64)
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 1, LearningRate: 0.1}
	mref := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	ev, err := events.New(context.Background(), "/test", events.RunStartedData{
		Job: events.JobRequestedData{ID: events.JobID(digest, mref, hp), Dataset: events.DatasetRef{Bucket: "datasets", Prefix: "x/", Digest: digest,
			Task: "classification", Format: "imagefolder"}, Model: mref, Hyperparameters: hp, Resources: events.Resources{GPUs: gpus}},
		RunID: id, Image: "local", Executor: Process, Output: "s3://runs/" + id + "/",
	})
	if err != nil {
		t.Fatal(err)
	}
	return Run{ID: id, Event: ev, GPUs: gpus}
}

// contentOf waits for the file at p to have content and returns it, trimmed.
func contentOf(t *testing.T, p string) string {
	t.Helper()
	var s string
	testsupport.Eventually(t, 10*time.Second, p+" to be written", func() bool {
		b, err := os.ReadFile(p)
		s = strings.TrimSpace(string(b))
		return err == nil && s != ""
	})
	return s
}

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func newProcess(t *testing.T, agent string) (*ProcessExecutor, string) {
	t.Helper()
	dir := t.TempDir()
	p, err := NewProcess(context.Background(), agent, dir, twoGPUs, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return p, dir
}

func TestProcessSchedulesGPUsAndQueues(t *testing.T) {
	p, dir := newProcess(t, standIn(t))
	if p.Slots != 2 {
		t.Fatalf("slots = %d, want one per GPU", p.Slots)
	}
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if err := p.Launch(ctx, runOf(t, id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Launch(ctx, runOf(t, "a", 1)); err != nil {
		t.Fatalf("relaunch of a = %v", err)
	}
	ga, gb := contentOf(t, filepath.Join(dir, "a", "gpus")), contentOf(t, filepath.Join(dir, "b", "gpus"))
	if ga == gb || (ga != "0" && ga != "1") || (gb != "0" && gb != "1") {
		t.Errorf("runs a and b got GPUs %q and %q, want 0 and 1", ga, gb)
	}
	if st, _ := p.Status("c"); st != "queued" {
		t.Errorf("c is %s, want queued while both GPUs are busy", st)
	}
	touch(t, filepath.Join(dir, "a", "release"))
	if code, err := p.Wait(ctx, "a"); code != 0 || err != nil {
		t.Errorf("Wait(a) = %d, %v; want 0", code, err)
	}
	if gc := contentOf(t, filepath.Join(dir, "c", "gpus")); gc != ga {
		t.Errorf("c got GPU %q, want a's freed GPU %q", gc, ga)
	}
	if starts := contentOf(t, filepath.Join(dir, "a", "starts")); starts != "start" {
		t.Errorf("a started %q, want once", starts)
	}
	// Cancel: a running run gets SIGTERM; a queued one is dropped.
	if err := p.Launch(ctx, runOf(t, "d", 2)); err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Status("d"); st != "queued" {
		t.Errorf("d is %s, want queued", st)
	}
	if err := p.Cancel(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if err := p.Cancel(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(ctx, "b"); code != 143 || err != nil {
		t.Errorf("Wait(cancelled b) = %d, %v; want 143", code, err)
	}
	if got := contentOf(t, filepath.Join(dir, "b", "cancelled")); got != "cancelled" {
		t.Errorf("b's agent wrote %q on SIGTERM", got)
	}
	if code, err := p.Wait(ctx, "d"); code != 143 || err != nil {
		t.Errorf("Wait(cancelled queued d) = %d, %v; want 143", code, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cancelled queued run d was started (stat: %v)", err)
	}
	touch(t, filepath.Join(dir, "c", "release"))
	if code, err := p.Wait(ctx, "c"); code != 0 || err != nil {
		t.Errorf("Wait(c) = %d, %v; want 0", code, err)
	}
	if err := p.Launch(ctx, runOf(t, "big", 3)); !errors.Is(err, ErrNoGPUs) {
		t.Errorf("Launch of a run asking for 3 GPUs on a 2-GPU host = %v, want ErrNoGPUs", err)
	}
	if err := p.Launch(ctx, Run{ID: "noevent"}); err == nil {
		t.Error("a run without its run.started event was accepted")
	}
	if err := p.Cancel(ctx, "nope"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Cancel(unknown) = %v, want ErrUnknownRun", err)
	}
	if _, err := p.Wait(ctx, "nope"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Wait(unknown) = %v, want ErrUnknownRun", err)
	}
}

// TestProcessCancelQueuedSendsFinished: a run cancelled while queued never
// starts its agent, so the executor sends its one ending itself, to the
// run's K_SINK.
func TestProcessCancelQueuedSendsFinished(t *testing.T) {
	p, dir := newProcess(t, standIn(t))
	sink := testsupport.NewSink(t, events.Validate)
	p.Env = []string{"K_SINK=http://127.0.0.1:1/not-this-one"} // the run's own K_SINK wins, as in the agent's environment
	ctx := context.Background()
	if err := p.Launch(ctx, runOf(t, "big", 2)); err != nil {
		t.Fatal(err)
	}
	contentOf(t, filepath.Join(dir, "big", "gpus"))
	queued := runOf(t, "queued", 1)
	queued.Env = []string{"K_SINK=" + sink.URL}
	if err := p.Launch(ctx, queued); err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Status("queued"); st != "queued" {
		t.Fatalf("run is %s, want queued behind the run holding both GPUs", st)
	}
	if err := p.Cancel(ctx, "queued"); err != nil {
		t.Fatal(err)
	}
	got := sink.OfType(string(events.RunFinished))
	if len(got) != 1 {
		t.Fatalf("sink got %d run.finished, want 1", len(got))
	}
	var fin events.RunFinishedData
	if err := events.DecodeInto(got[0], &fin); err != nil {
		t.Fatal(err)
	}
	var started events.RunStartedData
	if err := events.DecodeInto(queued.Event, &started); err != nil {
		t.Fatal(err)
	}
	want := events.RunFinishedData{Job: started.Job.ID, RunID: "queued", Status: events.StatusCancelled, Reason: ReasonCancelledQueued}
	if diff := cmp.Diff(want, fin); diff != "" {
		t.Errorf("run.finished (-want +got):\n%s", diff)
	}
	// The one ending of the run: the id the agent's run.finished would have.
	agentsEnding, err := events.New(ctx, "/vp/agent", want)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].ID() != agentsEnding.ID() || got[0].Source() != DefaultSource {
		t.Errorf("run.finished id %s, source %s; want id %s, source %s", got[0].ID(), got[0].Source(), agentsEnding.ID(), DefaultSource)
	}
	if tp, in := got[0].Extensions()[events.ExtTraceparent].(string), queued.Event.Extensions()[events.ExtTraceparent].(string); !sameTrace(tp, in) {
		t.Errorf("run.finished traceparent %s is not in run.started's trace %s", tp, in)
	}
	// A redelivered run.started starts nothing; a second Cancel sends nothing.
	if err := p.Launch(ctx, queued); err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Status("queued"); st != "ended" {
		t.Errorf("relaunched cancelled run is %s, want ended", st)
	}
	if err := p.Cancel(ctx, "queued"); err != nil {
		t.Errorf("second Cancel = %v, want nil (the run has ended)", err)
	}
	if n := len(sink.OfType(string(events.RunFinished))); n != 1 {
		t.Errorf("sink got %d run.finished after a relaunch and a second cancel, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "queued")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cancelled queued run was started (stat: %v)", err)
	}
	touch(t, filepath.Join(dir, "big", "release"))
	if code, err := p.Wait(ctx, "big"); code != 0 || err != nil {
		t.Errorf("Wait(big) = %d, %v", code, err)
	}
}

// sameTrace reports whether two W3C traceparents share their trace id.
func sameTrace(a, b string) bool {
	pa, pb := strings.Split(a, "-"), strings.Split(b, "-")
	return len(pa) == 4 && len(pb) == 4 && pa[1] == pb[1]
}

// TestProcessCancelQueuedSinkRefuses: an ending the sink refuses is
// Cancel's error (the run is cancelled all the same).
func TestProcessCancelQueuedSinkRefuses(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(refusing.Close)
	p, dir := newProcess(t, standIn(t))
	p.Env = []string{"K_SINK=" + refusing.URL}
	ctx := context.Background()
	if err := p.Launch(ctx, runOf(t, "big", 2)); err != nil {
		t.Fatal(err)
	}
	if err := p.Launch(ctx, runOf(t, "queued", 1)); err != nil {
		t.Fatal(err)
	}
	var se *sender.Error
	if err := p.Cancel(ctx, "queued"); !errors.As(err, &se) || se.Status != http.StatusBadRequest {
		t.Errorf("Cancel with a sink answering 400 = %v, want a *sender.Error with 400", err)
	}
	if st, _ := p.Status("queued"); st != "ended" {
		t.Errorf("run is %s after Cancel, want ended", st)
	}
	touch(t, filepath.Join(dir, "big", "release"))
	if _, err := p.Wait(ctx, "big"); err != nil {
		t.Fatal(err)
	}
}

// TestProcessCancelQueuedThroughSender: the executor's own Sender, when it
// has one, carries the ending instead of the run's K_SINK.
func TestProcessCancelQueuedThroughSender(t *testing.T) {
	p, dir := newProcess(t, standIn(t))
	var lines bytes.Buffer
	p.Sender = sender.NewLines(&lines)
	p.Source = "/vp/gpu-runner/test"
	ctx := context.Background()
	if err := p.Launch(ctx, runOf(t, "big", 2)); err != nil {
		t.Fatal(err)
	}
	queued := runOf(t, "queued", 1)
	queued.Env = []string{"K_SINK=http://127.0.0.1:1/not-this-one"}
	if err := p.Launch(ctx, queued); err != nil {
		t.Fatal(err)
	}
	if err := p.Cancel(ctx, "queued"); err != nil {
		t.Fatal(err)
	}
	var e event.Event
	if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
		t.Fatalf("the sender got %q: %v", lines.String(), err)
	}
	var fin events.RunFinishedData
	if err := events.DecodeInto(e, &fin); err != nil {
		t.Fatal(err)
	}
	if fin.RunID != "queued" || fin.Status != events.StatusCancelled || e.Source() != p.Source {
		t.Errorf("the sender got run %s %s from %s; want queued cancelled from %s", fin.RunID, fin.Status, e.Source(), p.Source)
	}
	touch(t, filepath.Join(dir, "big", "release"))
	if _, err := p.Wait(ctx, "big"); err != nil {
		t.Fatal(err)
	}
}

func TestLookupEnv(t *testing.T) {
	for _, c := range []struct {
		desc string
		envs [][]string
		want string
	}{
		{"none", [][]string{{"A=1"}, nil}, ""},
		{"host only", [][]string{{"K_SINK=host"}, nil, nil}, "host"},
		{"executor over host", [][]string{{"K_SINK=host"}, {"K_SINK=exec"}, nil}, "exec"},
		{"run over executor", [][]string{{"K_SINK=host"}, {"K_SINK=exec"}, {"K_SINK=run"}}, "run"},
		{"last in a list wins", [][]string{{"K_SINK=one", "K_SINK=two"}}, "two"},
		{"a longer name is not it", [][]string{{"K_SINK=host"}, {"K_SINKS=no"}}, "host"},
	} {
		if got := lookupEnv("K_SINK", c.envs...); got != c.want {
			t.Errorf("%s: lookupEnv(K_SINK, %v) = %q, want %q", c.desc, c.envs, got, c.want)
		}
	}
}

// TestProcessPrunesEndedRuns: ended runs leave the table; the last
// Remember of them are kept so that a redelivered launch starts nothing.
func TestProcessPrunesEndedRuns(t *testing.T) {
	p, dir := newProcess(t, script(t, "quick-agent", `echo start >> "$4/starts"`+"\n"))
	p.Remember = 3
	ctx := context.Background()
	const n = 8
	ids := make([]string, n)
	for i := range ids { // one at a time: Wait answers for a run while it is remembered
		ids[i] = "run-" + string(rune('a'+i))
		if err := p.Launch(ctx, runOf(t, ids[i], 1)); err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(ctx, ids[i]); code != 0 || err != nil {
			t.Fatalf("Wait(%s) = %d, %v", ids[i], code, err)
		}
	}
	if active, remembered := p.Table(); active != 0 || remembered != 3 {
		t.Errorf("after %d runs ended the table holds %d runs and remembers %d ended; want 0 and 3", n, active, remembered)
	}
	latest, oldest := ids[n-1], ids[0]
	if err := p.Launch(ctx, runOf(t, latest, 1)); err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Status(latest); st != "ended" {
		t.Errorf("relaunched %s is %s, want ended (not started again)", latest, st)
	}
	if code, err := p.Wait(ctx, latest); code != 0 || err != nil {
		t.Errorf("Wait(%s) after it ended = %d, %v; want its exit code 0", latest, code, err)
	}
	if st, _ := p.Status(oldest); st != "unknown" {
		t.Errorf("%s is %s, want forgotten (unknown)", oldest, st)
	}
	// A forgotten run is launched again: the bound on memory has this price.
	if err := p.Launch(ctx, runOf(t, oldest, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx, oldest); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{latest: "start", oldest: "start\nstart"} {
		if got := contentOf(t, filepath.Join(dir, id, "starts")); got != want {
			t.Errorf("%s's starts = %q, want %q", id, got, want)
		}
	}
	if active, remembered := p.Table(); active != 0 || remembered != 3 {
		t.Errorf("table holds %d runs and remembers %d ended; want 0 and 3", active, remembered)
	}
}

func TestNvidiaSMIAbsent(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if ids, err := NvidiaSMI(context.Background()); err != nil || len(ids) != 0 {
		t.Errorf("NvidiaSMI() without nvidia-smi = %v, %v; want no GPUs", ids, err)
	}
}

// buildAgent builds vp-agent.
func buildAgent(t testing.TB) string {
	out := filepath.Join(t.TempDir(), "vp-agent")
	cmd := exec.Command("go", "build", "-o", out, "github.com/vision-platform/vp/images/agent/cmd/vp-agent")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building vp-agent: %v\n%s", err, msg)
	}
	return out
}

// putManifest uploads a dataset's manifest.
func putManifest(t testing.TB, m *testsupport.MinIO, bucket, key string, manifest []byte) {
	t.Helper()
	if _, err := m.Client.PutObject(context.Background(), bucket, key, bytes.NewReader(manifest), int64(len(manifest)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestInt_ProcessRunsRealTraining launches a real run: the real agent, a
// real MinIO, real PyTorch on CPU.
func TestInt_ProcessRunsRealTraining(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	m.Bucket(t, "runs")
	data := t.TempDir()
	testsupport.MakeImageFolder(t, data, 8, 32)
	manifest, digest, err := dataset.ManifestOf(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	m.PutDir(t, data, "datasets", "cats/v1/")
	putManifest(t, m, "datasets", "cats/v1/manifest.json", manifest)
	sink := testsupport.NewSink(t, events.Validate)
	ref := events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: digest, Task: "classification", Format: "imagefolder"}
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 8, LearningRate: 0.01, ImageSize: 32}
	mref := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	ev, err := events.New(context.Background(), "/test", events.RunStartedData{
		Job:   events.JobRequestedData{ID: events.JobID(digest, mref, hp), Dataset: ref, Model: mref, Hyperparameters: hp},
		RunID: "run-proc", Image: "local", Executor: Process, Output: "s3://runs/run-proc/",
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProcess(context.Background(), buildAgent(t), t.TempDir(), NvidiaSMI, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	p.Env = []string{"VP_S3_ENDPOINT=" + m.Endpoint, "VP_S3_ACCESS_KEY=" + testsupport.MinIOUser, "VP_S3_SECRET_KEY=" + testsupport.MinIOPassword,
		"K_SINK=" + sink.URL, "VP_PYTHON=" + testsupport.Python, "PYTHONPATH=" + filepath.Join(testsupport.ModuleRoot(t), "images", "python")}
	if err := p.Launch(context.Background(), Run{ID: "run-proc", Event: ev}); err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait(context.Background(), "run-proc")
	if err != nil || code != 0 {
		log, rerr := os.ReadFile(filepath.Join(p.WorkDir, "run-proc", "agent.log"))
		t.Fatalf("agent exited %d (%v)\n%s%v", code, err, log, rerr)
	}
	var finished []string
	for _, e := range sink.OfType(string(events.RunFinished)) {
		var d events.RunFinishedData
		if err := events.DecodeInto(e, &d); err != nil {
			t.Fatal(err)
		}
		finished = append(finished, d.Status)
	}
	if len(finished) != 1 || finished[0] != events.StatusSucceeded {
		t.Errorf("run.finished statuses = %v, want one succeeded", finished)
	}
	if active, remembered := p.Table(); active != 0 || remembered != 1 {
		t.Errorf("table holds %d runs and remembers %d; want 0 and 1", active, remembered)
	}
}

// TestProcessShutdownInterrupts: Shutdown kills the running agents at once
// (no SIGTERM: the stand-in would write "cancelled"), drops the queued runs
// without an ending, and starts nothing afterwards.
func TestProcessShutdownInterrupts(t *testing.T) {
	p, dir := newProcess(t, standIn(t))
	sink := testsupport.NewSink(t, events.Validate)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		r := runOf(t, id, 1)
		r.Env = []string{"K_SINK=" + sink.URL}
		if err := p.Launch(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	contentOf(t, filepath.Join(dir, "a", "gpus"))
	contentOf(t, filepath.Join(dir, "b", "gpus"))
	got := p.Shutdown()
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("Shutdown() = %v, want %v", got, want)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := os.Stat(filepath.Join(dir, id, "cancelled")); !os.IsNotExist(err) {
			t.Errorf("run %s saw SIGTERM (%v): Shutdown must not make agents report", id, err)
		}
	}
	if n := len(sink.OfType(string(events.RunFinished))); n != 0 {
		t.Errorf("Shutdown sent %d run.finished, want none", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "c", "starts")); !os.IsNotExist(err) {
		t.Errorf("the queued run started after Shutdown (%v)", err)
	}
}
