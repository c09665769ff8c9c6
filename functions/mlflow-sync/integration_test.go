package mlflowsync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/fn"
	mlflowsync "github.com/vision-platform/vp/functions/mlflow-sync"
	"github.com/vision-platform/vp/functions/mlflow-sync/mlflow"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

var base = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// platformRun is one run's events, as the gpu-runner and the run agent
// send them.
type platformRun struct {
	job      events.JobRequestedData
	runID    string
	started  event.Event
	progress []event.Event
	prog     []events.RunProgressData // progress's payloads
	finished event.Event
	fin      events.RunFinishedData
}

// newRun makes a run of resnet18 on datasets/cats/v1 (seed makes it a job
// of its own) with steps run.progress events and a run.finished of status.
func newRun(t testing.TB, seed int64, steps int, status string) *platformRun {
	t.Helper()
	ctx := context.Background()
	r := &platformRun{job: events.JobRequestedData{
		Dataset:         events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: "sha256:" + strings.Repeat("c", 64), Task: events.TaskClassification, Format: events.FormatImageFolder},
		Model:           events.ModelRef{Framework: "torchvision", Name: "resnet18"},
		Hyperparameters: events.Hyperparameters{Epochs: steps, BatchSize: 8, LearningRate: 0.05, Seed: seed, Extra: map[string]any{"momentum": 0.9}},
		Resources:       events.Resources{Executor: "process"},
	}}
	r.job.ID = events.JobID(r.job.Dataset.Digest, r.job.Model, r.job.Hyperparameters)
	r.runID = "run-" + strings.TrimPrefix(r.job.ID, "job-")
	var err error
	r.started, err = events.New(ctx, "/gpu-runner", events.RunStartedData{
		Job: r.job, RunID: r.runID, Image: "127.0.0.1:5000/vp/torchvision@sha256:" + strings.Repeat("d", 64),
		Executor: "process", Output: "s3://runs/" + r.runID + "/",
	}, events.WithTime(base))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= steps; i++ {
		d := events.RunProgressData{
			Job: r.job.ID, RunID: r.runID, Epoch: i, Step: int64(10 * i),
			Metrics: map[string]float64{"loss": 1 / float64(i), "accuracy": 0.5 + float64(i)/100, "lr": 0.05},
			Time:    base.Add(time.Duration(i) * time.Second),
		}
		p, err := events.New(ctx, "/agent", d, events.WithTime(d.Time))
		if err != nil {
			t.Fatal(err)
		}
		r.progress, r.prog = append(r.progress, p), append(r.prog, d)
	}
	r.fin = events.RunFinishedData{Job: r.job.ID, RunID: r.runID, Status: status,
		Metrics:         map[string]float64{"accuracy": 0.5 + float64(steps)/100, "loss": 1 / float64(steps)},
		Log:             "s3://runs/" + r.runID + "/log.txt",
		DurationSeconds: float64(steps + 1),
	}
	if status == events.StatusSucceeded {
		for _, name := range []string{"weights/model.pt", "metrics.json", "model_card.json"} {
			r.fin.Artifacts = append(r.fin.Artifacts, events.Artifact{Name: name, URI: "s3://runs/" + r.runID + "/" + name, SHA256: fmt.Sprintf("%064x", len(name)), Size: int64(len(name))})
		}
	} else {
		r.fin.Reason, r.fin.LogTail = "exit status 1", "Traceback: boom"
	}
	r.finished, err = events.New(ctx, "/agent", r.fin, events.WithTime(base.Add(time.Duration(steps+1)*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// storeArtifacts puts files (name → content) in MinIO under the run's
// output and makes them run.finished's artifacts, with their sha256 and
// size; missing ones are announced but never put.
func (r *platformRun) storeArtifacts(t testing.TB, m *testsupport.MinIO, files map[string]string, missing ...string) {
	t.Helper()
	ctx := context.Background()
	r.fin.Artifacts = nil
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		key := r.runID + "/" + name
		if _, err := m.Client.PutObject(ctx, "runs", key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		r.fin.Artifacts = append(r.fin.Artifacts, events.Artifact{Name: name, URI: "s3://runs/" + key, SHA256: sha256Hex(body), Size: int64(len(body))})
	}
	for _, name := range missing {
		r.fin.Artifacts = append(r.fin.Artifacts, events.Artifact{Name: name, URI: "s3://runs/" + r.runID + "/" + name, SHA256: sha256Hex(""), Size: 0})
	}
	var err error
	if r.finished, err = events.New(ctx, "/agent", r.fin, events.WithTime(r.finished.Time())); err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// objects is the sha256 of each object under the s3:// folder, by its
// path in the folder.
func objects(t testing.TB, m *testsupport.MinIO, folder string) map[string]string {
	t.Helper()
	ctx := context.Background()
	u, err := objstore.ParseURI(folder)
	if err != nil {
		t.Fatal(err)
	}
	prefix := strings.TrimSuffix(u.Key, "/") + "/"
	got := map[string]string{}
	for oi := range m.Client.ListObjects(ctx, u.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		obj, err := m.Client.GetObject(ctx, u.Bucket, oi.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(obj)
		obj.Close()
		if err != nil {
			t.Fatal(err)
		}
		got[strings.TrimPrefix(oi.Key, prefix)] = sha256Hex(string(b))
	}
	return got
}

// mlflowRun is the MLflow run of a platform run.
func mlflowRun(t testing.TB, c *mlflow.Client, runID string) mlflow.Run {
	t.Helper()
	ctx := context.Background()
	x, err := c.ExperimentByName(ctx, "datasets/cats/v1")
	if err != nil {
		t.Fatal(err)
	}
	runs, err := c.SearchRuns(ctx, []string{x.ID}, "tags.vp_run_id = '"+runID+"'")
	if err != nil || len(runs) != 1 {
		t.Fatalf("SearchRuns(%s) = %d runs, %v; want one", runID, len(runs), err)
	}
	return runs[0]
}

// noCopy is a store without the server-side copy.
type noCopy struct{ objstore.Store }

func (r *platformRun) all() []event.Event {
	return append(append([]event.Event{r.started}, r.progress...), r.finished)
}

// state is what MLflow holds of a run, read through its REST API.
type state struct {
	Experiment       string
	ArtifactLocation string
	Runs             int // MLflow runs tagged with the run id
	Name             string
	Status           string
	StartTime        int64
	EndTime          int64
	Params           map[string]string
	Tags             map[string]string // vp_* tags
	History          map[string][]mlflow.Metric
}

// want is the state the run's events should leave in MLflow.
func (r *platformRun) want() state {
	ms := func(t time.Time) int64 { return t.UnixMilli() }
	s := state{
		Experiment: "datasets/cats/v1", ArtifactLocation: "s3://runs/", Runs: 1, Name: r.runID,
		Status:    map[string]string{events.StatusSucceeded: "FINISHED", events.StatusFailed: "FAILED", events.StatusCancelled: "KILLED"}[r.fin.Status],
		StartTime: ms(base), EndTime: ms(r.finished.Time()),
		Params: map[string]string{
			"model": "torchvision/resnet18", "framework": "torchvision", "model_name": "resnet18",
			"epochs": fmt.Sprint(r.job.Hyperparameters.Epochs), "batchSize": "8", "learningRate": "0.05",
			"seed": fmt.Sprint(r.job.Hyperparameters.Seed), "extra.momentum": "0.9",
		},
		Tags: map[string]string{
			"vp_run_id": r.runID, "vp_job_id": r.job.ID, "vp_dataset": "s3://datasets/cats/v1/",
			"vp_dataset_digest": r.job.Dataset.Digest, "vp_image": "127.0.0.1:5000/vp/torchvision@sha256:" + strings.Repeat("d", 64),
			"vp_executor": "process", "vp_output": "s3://runs/" + r.runID + "/",
			"vp_status": r.fin.Status, "vp_log": r.fin.Log, "vp_duration_seconds": fmt.Sprint(r.fin.DurationSeconds),
		},
		History: map[string][]mlflow.Metric{},
	}
	if r.fin.Reason != "" {
		s.Tags["vp_reason"], s.Tags["vp_log_tail"] = r.fin.Reason, r.fin.LogTail
	}
	for _, a := range r.fin.Artifacts {
		s.Tags["vp_artifact."+a.Name] = fmt.Sprintf(`{"uri":%q,"sha256":%q,"size":%d}`, a.URI, a.SHA256, a.Size)
	}
	for i, d := range r.prog {
		for k, v := range d.Metrics {
			s.History[k] = append(s.History[k], mlflow.Metric{Key: k, Value: v, Timestamp: ms(d.Time), Step: d.Step})
		}
		s.History["epoch"] = append(s.History["epoch"], mlflow.Metric{Key: "epoch", Value: float64(i + 1), Timestamp: ms(d.Time), Step: d.Step})
	}
	for k, v := range r.fin.Metrics {
		s.History["final/"+k] = []mlflow.Metric{{Key: "final/" + k, Value: v, Timestamp: ms(r.finished.Time()), Step: 0}}
	}
	return s
}

// snapshot reads the run's state from MLflow.
func snapshot(t testing.TB, c *mlflow.Client, runID string) state {
	t.Helper()
	ctx := context.Background()
	x, err := c.ExperimentByName(ctx, "datasets/cats/v1")
	if err != nil {
		t.Fatal(err)
	}
	runs, err := c.SearchRuns(ctx, []string{x.ID}, "tags.vp_run_id = '"+runID+"'")
	if err != nil {
		t.Fatal(err)
	}
	s := state{Experiment: x.Name, ArtifactLocation: x.ArtifactLocation, Runs: len(runs)}
	if len(runs) == 0 {
		return s
	}
	r, err := c.GetRun(ctx, runs[0].Info.RunID)
	if err != nil {
		t.Fatal(err)
	}
	s.Name, s.Status, s.StartTime, s.EndTime = r.Info.RunName, r.Info.Status, r.Info.StartTime, r.Info.EndTime
	s.Params, s.Tags, s.History = map[string]string{}, map[string]string{}, map[string][]mlflow.Metric{}
	for _, p := range r.Data.Params {
		s.Params[p.Key] = p.Value
	}
	for _, tg := range r.Data.Tags {
		if strings.HasPrefix(tg.Key, "vp_") && tg.Key != "vp_model_version" {
			s.Tags[tg.Key] = tg.Value
		}
	}
	for _, m := range r.Data.Metrics {
		h, err := c.MetricHistory(ctx, r.Info.RunID, m.Key)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(h, func(a, b mlflow.Metric) int { return int(a.Step - b.Step) })
		s.History[m.Key] = h
	}
	return s
}

// deliverAll delivers evs as the broker would: an event answered 5xx
// is delivered again, in later rounds, until every one is taken (2xx).
func deliverAll(t testing.TB, to string, evs []event.Event) {
	t.Helper()
	pending := evs
	for round := 0; len(pending) > 0; round++ {
		if round == 20 {
			t.Fatalf("%d events still refused after %d rounds of redelivery", len(pending), round)
		}
		var again []event.Event
		for _, e := range pending {
			status, _, body := testsupport.Deliver(t, to, e)
			switch {
			case status/100 == 2:
			case status >= 500:
				again = append(again, e)
			default:
				t.Fatalf("delivering %s %s: %d %s", e.Type(), e.ID(), status, body)
			}
		}
		pending = again
	}
}

// postUntilTaken delivers e in binary mode until it is answered 2xx
// (5xx: again, after a pause), for goroutines other than the test's.
func postUntilTaken(to string, e event.Event) error {
	for attempt := 0; attempt < 100; attempt++ {
		req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), to, e)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2:
			return nil
		case resp.StatusCode < 500:
			return fmt.Errorf("delivering %s %s: %s", e.Type(), e.ID(), resp.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("delivering %s %s: still refused after 100 attempts", e.Type(), e.ID())
}

// function starts mlflow-sync with cfg and serves it as func-go does.
func function(t testing.TB, log zerolog.Logger, cfg map[string]string, opts ...mlflowsync.Option) string {
	t.Helper()
	f := mlflowsync.New(append([]mlflowsync.Option{mlflowsync.WithLogger(log)}, opts...)...)
	if err := f.Start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	h, err := fn.Handler(f)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func client(t testing.TB, uri string) *mlflow.Client {
	t.Helper()
	c, err := mlflow.New(uri)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestInt_Sync runs a real MLflow tracking server (SQLite, artifacts in
// MinIO) and syncs runs to it through the function's HTTP handler.
func TestInt_Sync(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "runs")
	ml := testsupport.StartMLflow(t, testsupport.MLflowConfig{ArtifactRoot: "s3://runs/", S3: m})
	c := client(t, ml.URL)
	cfg := map[string]string{mlflowsync.EnvTrackingURI: ml.URL}
	fnURL := function(t, zerolog.Nop(), cfg)

	t.Run("a run lands whole", func(t *testing.T) {
		r := newRun(t, 1, 3, events.StatusSucceeded)
		for _, e := range r.all() {
			if status, _, body := testsupport.Deliver(t, fnURL, e); status/100 != 2 {
				t.Fatalf("delivering %s: %d %s", e.Type(), status, body)
			}
		}
		if diff := cmp.Diff(r.want(), snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run (-want +got):\n%s", diff)
		}
		// The experiment's artifact location is MinIO's runs bucket: the
		// server lists what is under a run's artifact folder there.
		x, err := c.ExperimentByName(context.Background(), "datasets/cats/v1")
		if err != nil {
			t.Fatal(err)
		}
		found, err := c.SearchRuns(context.Background(), []string{x.ID}, "tags.vp_run_id = '"+r.runID+"'")
		if err != nil || len(found) != 1 {
			t.Fatalf("SearchRuns() = %d runs, %v", len(found), err)
		}
		key := strings.TrimPrefix(found[0].Info.ArtifactURI, "s3://runs/") + "/README.txt"
		if _, err := m.Client.PutObject(context.Background(), "runs", key, strings.NewReader("hi"), 2, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(ml.URL + "/api/2.0/mlflow/artifacts/list?run_id=" + found[0].Info.RunID)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(b.String(), "README.txt") {
			t.Errorf("artifacts/list of the run = %d %s; want README.txt listed from MinIO", resp.StatusCode, b.String())
		}
	})

	t.Run("redelivered and shuffled", func(t *testing.T) {
		r := newRun(t, 2, 4, events.StatusFailed)
		evs := append(r.all(), r.all()...)
		rand.New(rand.NewPCG(14, 2)).Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		deliverAll(t, fnURL, evs)
		if diff := cmp.Diff(r.want(), snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run after shuffled duplicates (-want +got):\n%s", diff)
		}
		// A step sent again with other values and time (a run resumed from
		// an earlier checkpoint): the step is logged already, and stays.
		again := r.progress[1].Clone()
		if err := again.SetData(events.ContentType, events.RunProgressData{Job: r.job.ID, RunID: r.runID, Epoch: 2, Step: 20,
			Metrics: map[string]float64{"loss": 9, "accuracy": 0.01}, Time: base.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		deliverAll(t, fnURL, []event.Event{again})
		if diff := cmp.Diff(r.want(), snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run after a step sent again (-want +got):\n%s", diff)
		}
	})

	t.Run("finished before a late progress", func(t *testing.T) {
		r := newRun(t, 3, 3, events.StatusCancelled)
		deliverAll(t, fnURL, []event.Event{r.started, r.progress[0], r.finished, r.progress[2], r.progress[1], r.progress[1], r.finished})
		if diff := cmp.Diff(r.want(), snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run (-want +got):\n%s", diff)
		}
	})

	t.Run("delivered all at once", func(t *testing.T) {
		// As the broker does, up to its parallelism: every event of a run
		// (twice) on connections of its own, each retried until taken.
		r := newRun(t, 11, 6, events.StatusSucceeded)
		evs := append(r.all(), r.all()...)
		errs := make(chan error, len(evs))
		var wg sync.WaitGroup
		for _, e := range evs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- postUntilTaken(fnURL, e)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if diff := cmp.Diff(r.want(), snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run (-want +got):\n%s", diff)
		}
	})

	t.Run("found again after a restart", func(t *testing.T) {
		r := newRun(t, 4, 3, events.StatusSucceeded)
		deliverAll(t, fnURL, []event.Event{r.started, r.progress[0], r.progress[1]})
		// A new instance knows nothing in memory: it finds the MLflow run by
		// its vp_run_id tag and each metric's history there.
		other := function(t, zerolog.Nop(), cfg)
		deliverAll(t, other, r.all())
		if diff := cmp.Diff(r.want(), snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run (-want +got):\n%s", diff)
		}
	})

	t.Run("model registry", func(t *testing.T) {
		reg := function(t, zerolog.Nop(), map[string]string{mlflowsync.EnvTrackingURI: ml.URL, mlflowsync.EnvRegisterModels: "true"})
		ok := newRun(t, 5, 2, events.StatusSucceeded)
		failed := newRun(t, 6, 2, events.StatusFailed)
		deliverAll(t, reg, append(append(ok.all(), ok.finished), failed.all()...))
		if diff := cmp.Diff(ok.want(), snapshot(t, c, ok.runID)); diff != "" {
			t.Errorf("MLflow's run (-want +got):\n%s", diff)
		}
		ctx := context.Background()
		x, err := c.ExperimentByName(ctx, "datasets/cats/v1")
		if err != nil {
			t.Fatal(err)
		}
		runOf := func(r *platformRun) mlflow.Run {
			runs, err := c.SearchRuns(ctx, []string{x.ID}, "tags.vp_run_id = '"+r.runID+"'")
			if err != nil || len(runs) != 1 {
				t.Fatalf("SearchRuns(%s) = %d runs, %v", r.runID, len(runs), err)
			}
			return runs[0]
		}
		okRun, failedRun := runOf(ok), runOf(failed)
		mvs, err := c.SearchModelVersions(ctx, "name = 'torchvision-resnet18' and run_id = '"+okRun.Info.RunID+"'")
		if err != nil {
			t.Fatal(err)
		}
		if len(mvs) != 1 {
			t.Fatalf("model versions of the succeeded run = %+v, want one", mvs)
		}
		mv := mvs[0]
		weights := ok.fin.Artifacts[0]
		tags := map[string]string{}
		for _, tg := range mv.Tags {
			tags[tg.Key] = tg.Value
		}
		wantTags := map[string]string{
			"vp_weights": weights.URI, "vp_weights_sha256": weights.SHA256, "vp_run_id": ok.runID, "vp_job_id": ok.job.ID,
			"vp_dataset": "s3://datasets/cats/v1/", "vp_dataset_digest": ok.job.Dataset.Digest,
			"vp_image": "127.0.0.1:5000/vp/torchvision@sha256:" + strings.Repeat("d", 64), "vp_executor": "process",
		}
		if mv.Source != weights.URI {
			t.Errorf("model version source = %q, want the weights' URI %q", mv.Source, weights.URI)
		}
		if diff := cmp.Diff(wantTags, tags); diff != "" {
			t.Errorf("model version tags (-want +got):\n%s", diff)
		}
		if v, _ := okRun.Tag("vp_model_version"); v != "torchvision-resnet18/"+mv.Version {
			t.Errorf("run tag vp_model_version = %q, want torchvision-resnet18/%s", v, mv.Version)
		}
		none, err := c.SearchModelVersions(ctx, "run_id = '"+failedRun.Info.RunID+"'")
		if err != nil || len(none) != 0 {
			t.Errorf("model versions of the failed run = %+v, %v; want none", none, err)
		}
	})

	s3cfg := map[string]string{
		mlflowsync.EnvTrackingURI: ml.URL, mlflowsync.EnvRegisterModels: "true",
		"VP_S3_ENDPOINT": m.Endpoint, "VP_S3_ACCESS_KEY": testsupport.MinIOUser, "VP_S3_SECRET_KEY": testsupport.MinIOPassword,
	}
	files := map[string]string{
		"weights/model.pt": "resnet18 weights \x00\x01\x02", "metrics.json": `{"accuracy": 0.52}`, "model_card.json": `{"model": "torchvision/resnet18"}`,
	}
	wantObjects := map[string]string{}
	for name, body := range files {
		wantObjects[name] = sha256Hex(body)
	}

	t.Run("artifacts copied into the MLflow run", func(t *testing.T) {
		ctx := context.Background()
		withStore := function(t, zerolog.Nop(), s3cfg)
		r := newRun(t, 12, 2, events.StatusSucceeded)
		r.storeArtifacts(t, m, files, "gone.txt")
		deliverAll(t, withStore, r.all())
		want := r.want()
		want.Tags[mlflowsync.TagArtifactsCopied] = "true"
		if diff := cmp.Diff(want, snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run (-want +got):\n%s", diff)
		}
		run := mlflowRun(t, c, r.runID)
		if !strings.HasPrefix(run.Info.ArtifactURI, "s3://runs/") {
			t.Fatalf("the MLflow run's artifact_uri = %q, want it in s3://runs/", run.Info.ArtifactURI)
		}
		// MLflow lists them, reading MinIO, as its UI does.
		root, err := c.ListArtifacts(ctx, run.Info.RunID, "")
		if err != nil {
			t.Fatal(err)
		}
		inWeights, err := c.ListArtifacts(ctx, run.Info.RunID, "weights")
		if err != nil {
			t.Fatal(err)
		}
		byPath := func(a, b mlflow.FileInfo) int { return strings.Compare(a.Path, b.Path) }
		slices.SortFunc(root, byPath)
		wantRoot := []mlflow.FileInfo{
			{Path: "metrics.json", FileSize: int64(len(files["metrics.json"]))},
			{Path: "model_card.json", FileSize: int64(len(files["model_card.json"]))},
			{Path: "weights", IsDir: true},
		}
		if diff := cmp.Diff(wantRoot, root); diff != "" {
			t.Errorf("artifacts/list of the run (-want +got):\n%s", diff)
		}
		wantWeights := []mlflow.FileInfo{{Path: "weights/model.pt", FileSize: int64(len(files["weights/model.pt"]))}}
		if diff := cmp.Diff(wantWeights, inWeights); diff != "" {
			t.Errorf("artifacts/list of the run's weights (-want +got):\n%s", diff)
		}
		// The bytes at the run's artifact path are the originals' (sha256).
		if diff := cmp.Diff(wantObjects, objects(t, m, run.Info.ArtifactURI)); diff != "" {
			t.Errorf("the sha256 of the objects in the run's artifact folder (-want +got):\n%s", diff)
		}
		// The registered version's source is the copy; the original URI
		// and sha256 are its tags.
		mvs, err := c.SearchModelVersions(ctx, "name = 'torchvision-resnet18' and run_id = '"+run.Info.RunID+"'")
		if err != nil || len(mvs) != 1 {
			t.Fatalf("model versions of the run = %+v, %v; want one", mvs, err)
		}
		weights := r.fin.Artifacts[slices.IndexFunc(r.fin.Artifacts, func(a events.Artifact) bool { return a.Name == "weights/model.pt" })]
		if want := run.Info.ArtifactURI + "/weights/model.pt"; mvs[0].Source != want {
			t.Errorf("model version source = %q, want the copy %q", mvs[0].Source, want)
		}
		tags := map[string]string{}
		for _, tg := range mvs[0].Tags {
			tags[tg.Key] = tg.Value
		}
		if tags["vp_weights"] != weights.URI || tags["vp_weights_sha256"] != weights.SHA256 {
			t.Errorf("model version tags vp_weights, vp_weights_sha256 = %q, %q; want %q, %q", tags["vp_weights"], tags["vp_weights_sha256"], weights.URI, weights.SHA256)
		}

		// Redelivered, to this instance and to a new one (which knows only
		// what MLflow holds): nothing is copied again. A copy removed since
		// stays removed.
		copyURI, err := objstore.ParseURI(run.Info.ArtifactURI + "/metrics.json")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Client.RemoveObject(ctx, copyURI.Bucket, copyURI.Key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		deliverAll(t, withStore, []event.Event{r.finished})
		deliverAll(t, function(t, zerolog.Nop(), s3cfg), []event.Event{r.finished})
		again := maps.Clone(wantObjects)
		delete(again, "metrics.json")
		if diff := cmp.Diff(again, objects(t, m, run.Info.ArtifactURI)); diff != "" {
			t.Errorf("the run's artifact folder after redeliveries (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run after redeliveries (-want +got):\n%s", diff)
		}
		if mvs, err := c.SearchModelVersions(ctx, "run_id = '"+run.Info.RunID+"'"); err != nil || len(mvs) != 1 {
			t.Errorf("model versions of the run after redeliveries = %+v, %v; want one", mvs, err)
		}
	})

	t.Run("artifacts copied through the function by a store that cannot copy", func(t *testing.T) {
		f := function(t, zerolog.Nop(), map[string]string{mlflowsync.EnvTrackingURI: ml.URL},
			mlflowsync.WithStore(noCopy{objstore.FromMinIO(m.Client)}))
		r := newRun(t, 13, 1, events.StatusFailed)
		r.storeArtifacts(t, m, files)
		deliverAll(t, f, r.all())
		want := r.want()
		want.Tags[mlflowsync.TagArtifactsCopied] = "true"
		if diff := cmp.Diff(want, snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantObjects, objects(t, m, mlflowRun(t, c, r.runID).Info.ArtifactURI)); diff != "" {
			t.Errorf("the sha256 of the objects in the run's artifact folder (-want +got):\n%s", diff)
		}
	})

	t.Run("a store error is redelivered", func(t *testing.T) {
		bad := maps.Clone(s3cfg)
		bad["VP_S3_SECRET_KEY"] = "not-the-password"
		refused := function(t, zerolog.Nop(), bad)
		r := newRun(t, 15, 1, events.StatusSucceeded)
		r.storeArtifacts(t, m, files)
		deliverAll(t, refused, append([]event.Event{r.started}, r.progress...))
		if status, _, body := testsupport.Deliver(t, refused, r.finished); status != http.StatusServiceUnavailable {
			t.Errorf("delivering run.finished with the store refusing = %d %s, want 503", status, body)
		}
		run := mlflowRun(t, c, r.runID)
		if v, ok := run.Tag(mlflowsync.TagArtifactsCopied); ok {
			t.Errorf("after a failed copy the run is tagged %s = %q", mlflowsync.TagArtifactsCopied, v)
		}
		// Redelivered once the store takes the credentials.
		deliverAll(t, function(t, zerolog.Nop(), s3cfg), []event.Event{r.finished})
		want := r.want()
		want.Tags[mlflowsync.TagArtifactsCopied] = "true"
		if diff := cmp.Diff(want, snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantObjects, objects(t, m, run.Info.ArtifactURI)); diff != "" {
			t.Errorf("the sha256 of the objects in the run's artifact folder (-want +got):\n%s", diff)
		}
	})

	t.Run("artifacts left alone outside the runs bucket", func(t *testing.T) {
		// The experiment's artifact location is s3://runs/, not this
		// instance's runs bucket: the folder may be in another store.
		cfg := maps.Clone(s3cfg)
		cfg[mlflowsync.EnvRunsBucket] = "elsewhere"
		r := newRun(t, 14, 1, events.StatusSucceeded)
		r.storeArtifacts(t, m, files)
		deliverAll(t, function(t, zerolog.Nop(), cfg), r.all())
		if diff := cmp.Diff(r.want(), snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run (-want +got):\n%s", diff)
		}
		if got := objects(t, m, mlflowRun(t, c, r.runID).Info.ArtifactURI); len(got) != 0 {
			t.Errorf("objects in the run's artifact folder = %v, want none", got)
		}
	})

	t.Run("authentication", func(t *testing.T) {
		target, err := url.Parse(ml.URL)
		if err != nil {
			t.Fatal(err)
		}
		proxy := httputil.NewSingleHostReverseProxy(target)
		var mu sync.Mutex
		seen := map[string]int{}
		const want = "Bearer s3cr3t-t0ken"
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[r.Header.Get("Authorization")]++
			mu.Unlock()
			if r.Header.Get("Authorization") != want {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		defer srv.Close()
		var logs testsupport.SyncBuffer
		log := zerolog.New(&logs).Level(zerolog.DebugLevel)
		good := function(t, log, map[string]string{mlflowsync.EnvTrackingURI: srv.URL, mlflowsync.EnvToken: "s3cr3t-t0ken"})
		r := newRun(t, 7, 2, events.StatusSucceeded)
		deliverAll(t, good, r.all())
		if diff := cmp.Diff(r.want(), snapshot(t, c, r.runID)); diff != "" {
			t.Errorf("MLflow's run through the proxy (-want +got):\n%s", diff)
		}
		// A refused credential is the operator's to fix: retried, not dropped.
		bad := function(t, log, map[string]string{mlflowsync.EnvTrackingURI: srv.URL, mlflowsync.EnvUsername: "me", mlflowsync.EnvPassword: "hunter2-pw"})
		r2 := newRun(t, 8, 1, events.StatusSucceeded)
		if status, _, body := testsupport.Deliver(t, bad, r2.started); status != http.StatusServiceUnavailable || !strings.Contains(body, "401") {
			t.Errorf("delivering with a refused credential = %d %s, want 503 naming the 401", status, body)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 2 || seen[want] == 0 || seen["Basic bWU6aHVudGVyMi1wdw=="] == 0 {
			t.Errorf("Authorization headers the proxy saw = %v, want %q and the basic one", seen, want)
		}
		for _, secret := range []string{"s3cr3t-t0ken", "hunter2-pw", "bWU6aHVudGVyMi1wdw"} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the logs hold the secret %q:\n%s", secret, logs.String())
			}
		}
		if !strings.Contains(logs.String(), "401") {
			t.Errorf("the logs do not say the credential was refused:\n%s", logs.String())
		}
	})

	t.Run("invalid events refused, others ignored", func(t *testing.T) {
		r := newRun(t, 9, 1, events.StatusSucceeded)
		bad := r.progress[0].Clone()
		bad.SetExtension(events.ExtJobID, "job-ffffffffffffffffffff")
		if status, _, body := testsupport.Deliver(t, fnURL, bad); status != http.StatusBadRequest {
			t.Errorf("delivering an invalid run.progress = %d %s, want 400", status, body)
		}
		other := event.New()
		other.SetID("1")
		other.SetSource("/elsewhere")
		other.SetType("com.example.thing")
		if status, _, body := testsupport.Deliver(t, fnURL, other); status/100 != 2 {
			t.Errorf("delivering a foreign event = %d %s, want 2xx", status, body)
		}
	})
}

// TestInt_MLflowDown: MLflow killed in the middle of a run; the events it
// missed are answered 503, delivered again once it is back (same
// database), and nothing is lost or doubled.
func TestInt_MLflowDown(t *testing.T) {
	testsupport.Integration(t)
	ml := testsupport.StartMLflow(t, testsupport.MLflowConfig{ArtifactRoot: "s3://runs/"})
	cfg := map[string]string{mlflowsync.EnvTrackingURI: ml.URL, mlflowsync.EnvTimeout: "5s"}
	fnURL := function(t, zerolog.Nop(), cfg)
	r := newRun(t, 10, 4, events.StatusSucceeded)
	deliverAll(t, fnURL, []event.Event{r.started, r.progress[0], r.progress[1]})

	ml.Kill()
	backlog := []event.Event{r.progress[2], r.progress[3], r.finished}
	for _, e := range backlog {
		if status, _, body := testsupport.Deliver(t, fnURL, e); status != http.StatusServiceUnavailable {
			t.Fatalf("delivering %s with MLflow down = %d %s, want 503", e.Type(), status, body)
		}
	}
	ml.Start()
	deliverAll(t, fnURL, backlog)
	c := client(t, ml.URL)
	if diff := cmp.Diff(r.want(), snapshot(t, c, r.runID)); diff != "" {
		t.Errorf("MLflow's run after the outage (-want +got):\n%s", diff)
	}
	// Everything once more, to a new instance: nothing changes.
	deliverAll(t, function(t, zerolog.Nop(), cfg), r.all())
	if diff := cmp.Diff(r.want(), snapshot(t, c, r.runID)); diff != "" {
		t.Errorf("MLflow's run after a full redelivery (-want +got):\n%s", diff)
	}
}
