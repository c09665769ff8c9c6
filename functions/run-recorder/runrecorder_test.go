package runrecorder_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/functions/funcyaml"
	runrecorder "github.com/vision-platform/vp/functions/run-recorder"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

func TestFuncYAML(t *testing.T) {
	f, err := funcyaml.Parse("func.yaml", runrecorder.FuncYAML)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "run-recorder" || len(f.Deploy.Subscriptions) != 1 || len(f.Deploy.Subscriptions[0].Filters) != 0 {
		t.Errorf("func.yaml = %+v, want one subscription to every event", f)
	}
}

func post(t *testing.T, url string, e event.Event) int {
	t.Helper()
	status, _, _ := testsupport.Deliver(t, url, e)
	return status
}

func TestInt_RunRecorder(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "platform")
	store := objstore.FromMinIO(m.Client)
	f := runrecorder.New(runrecorder.WithStore(store), runrecorder.WithLogger(zerolog.Nop()))
	if err := f.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	h, err := fn.Handler(f)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	j := events.JobRequestedData{
		Dataset:         events.DatasetRef{Bucket: "datasets", Prefix: "cats/", Digest: "sha256:" + strings.Repeat("a", 64), Task: "classification", Format: "imagefolder"},
		Model:           events.ModelRef{Framework: "torchvision", Name: "resnet18"},
		Hyperparameters: events.Hyperparameters{Epochs: 1, BatchSize: 4, LearningRate: 0.1},
	}
	j.ID = events.JobID(j.Dataset.Digest, j.Model, j.Hyperparameters)
	req, err := events.New(context.Background(), "/test", j)
	if err != nil {
		t.Fatal(err)
	}
	fail, err := events.Next(req, "/test", events.ImageFailedData{Job: j.ID, Framework: "torchvision", Reason: "NoLock", Message: "no lock file"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []event.Event{fail, req, fail} {
		if got := post(t, srv.URL, e); got/100 != 2 {
			t.Fatalf("POST %s = %d", e.Type(), got)
		}
	}
	s, err := ledger.New(store, "platform").Job(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != ledger.StateFailed || len(s.Timeline) != 2 || s.Model == nil || s.Model.Name != "resnet18" {
		t.Errorf("status = %+v, want failed with two events and the model", s)
	}

	foreign := event.New()
	foreign.SetID("1")
	foreign.SetSource("/elsewhere")
	foreign.SetType("com.example.thing")
	if got := post(t, srv.URL, foreign); got/100 != 2 {
		t.Errorf("POST a foreign event = %d, want 2xx (ignored)", got)
	}
	bad := req.Clone()
	bad.SetExtension(events.ExtJobID, "job-ffffffffffffffffffff")
	if got := post(t, srv.URL, bad); got != http.StatusBadRequest {
		t.Errorf("POST an invalid platform event = %d, want 400", got)
	}
	// The store gone: a failure the broker retries.
	m2 := testsupport.StartMinIO(t)
	gone := runrecorder.New(runrecorder.WithStore(objstore.FromMinIO(m2.Client)), runrecorder.WithBucket("missing-bucket"), runrecorder.WithLogger(zerolog.Nop()))
	if err := gone.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Handle(context.Background(), req); fn.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("Handle with the ledger's bucket missing = %v (status %d), want 503", err, fn.StatusOf(err))
	}
}

func TestStartNeedsAStore(t *testing.T) {
	f := runrecorder.New(runrecorder.WithLogger(zerolog.Nop()))
	err := f.Start(context.Background(), map[string]string{})
	if err == nil || !strings.Contains(err.Error(), "VP_S3_ENDPOINT") {
		t.Errorf("Start() without VP_S3_ENDPOINT = %v, want an error naming it", err)
	}
}
