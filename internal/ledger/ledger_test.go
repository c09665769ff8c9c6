package ledger

import (
	"context"
	"errors"
	"testing"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

func TestInt_Record(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "platform")
	ctx := context.Background()
	l := New(objstore.FromMinIO(m.Client), "")
	evs := chain(t)
	up := mk(t, events.DatasetUploadedData{DatasetRef: testJob().Dataset, Name: "cats", Manifest: "cats/dataset.yaml", Files: 4, Bytes: 100}, -1)
	// Every event twice, the second pass backwards.
	all := append(append(evs, up), evs...)
	for i := len(evs) - 1; i >= 0; i-- {
		all = append(all, evs[i])
	}
	for _, e := range all {
		if err := l.Record(ctx, e); err != nil {
			t.Fatalf("Record(%s) = %v", e.Type(), err)
		}
	}
	job := testJob().ID
	s, err := l.Job(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if want := fold(t, evs); s.State != want.State || len(s.Timeline) != len(want.Timeline) || s.Progress.Step != 8 {
		t.Errorf("stored status %+v, want the fold of the chain %+v", s, want)
	}
	got, err := l.Events(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(evs) {
		t.Fatalf("Events() = %d events, want %d (one per id)", len(got), len(evs))
	}
	for i := range evs {
		if got[i].ID() != evs[i].ID() {
			t.Errorf("Events()[%d] = %s, want %s (by time)", i, got[i].ID(), evs[i].ID())
		}
	}
	jobs, err := l.Jobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0] != job {
		t.Errorf("Jobs() = %v, %v", jobs, err)
	}
	models, err := l.Models(ctx, &events.ModelRef{Framework: "torchvision", Name: "resnet18"})
	if err != nil || len(models) != 1 || models[0].RunID != "run-1" || models[0].Dataset.Digest != digest || models[0].Metrics["accuracy"] != 0.75 {
		t.Errorf("Models() = %+v, %v", models, err)
	}
	ds, err := l.Datasets(ctx)
	if err != nil || len(ds) != 1 || ds[0].State != "uploaded" || len(ds[0].Jobs) != 1 || ds[0].Jobs[0] != job {
		t.Errorf("Datasets() = %+v, %v", ds, err)
	}
	if ok, err := l.HasJob(ctx, job); !ok || err != nil {
		t.Errorf("HasJob(%s) = %v, %v", job, ok, err)
	}
	if ok, err := l.HasJob(ctx, "job-00000000000000000000"); ok || err != nil {
		t.Errorf("HasJob(unknown) = %v, %v", ok, err)
	}
	if _, err := l.Job(ctx, "job-00000000000000000000"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Job(unknown) = %v, want ErrNotFound", err)
	}
}
