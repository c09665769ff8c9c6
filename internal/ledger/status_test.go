package ledger

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/events"
)

const digest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func testJob() events.JobRequestedData {
	j := events.JobRequestedData{
		Dataset:         events.DatasetRef{Bucket: "datasets", Prefix: "cats/", Digest: digest, Task: "classification", Format: "imagefolder"},
		Model:           events.ModelRef{Framework: "torchvision", Name: "resnet18"},
		Hyperparameters: events.Hyperparameters{Epochs: 2, BatchSize: 8, LearningRate: 0.01},
	}
	j.ID = events.JobID(j.Dataset.Digest, j.Model, j.Hyperparameters)
	return j
}

// mk makes an event of p at t0+sec seconds.
func mk(t *testing.T, p events.Payload, sec int) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), "/test", p)
	if err != nil {
		t.Fatalf("events.New(%T) = %v", p, err)
	}
	e.SetTime(t0.Add(time.Duration(sec) * time.Second))
	return e
}

// chain is a whole succeeded job's events, in flow order.
func chain(t *testing.T) []event.Event {
	j := testJob()
	ref := "127.0.0.1:5000/vp/torchvision@" + digest
	run := "run-1"
	return []event.Event{
		mk(t, j, 0),
		mk(t, events.ImageBuiltData{Job: j.ID, Request: j, Framework: "torchvision", Reference: ref, CacheHit: true}, 1),
		mk(t, events.RunStartedData{Job: j, RunID: run, Image: ref, Executor: "process", Output: "s3://runs/run-1/"}, 2),
		mk(t, events.RunProgressData{Job: j.ID, RunID: run, Epoch: 1, Step: 4, Metrics: map[string]float64{"loss": 0.9}, Time: t0.Add(3 * time.Second)}, 3),
		mk(t, events.RunProgressData{Job: j.ID, RunID: run, Epoch: 2, Step: 8, Metrics: map[string]float64{"loss": 0.5}, Time: t0.Add(4 * time.Second)}, 4),
		mk(t, events.RunFinishedData{Job: j.ID, RunID: run, Status: events.StatusSucceeded, Metrics: map[string]float64{"accuracy": 0.75},
			Artifacts: []events.Artifact{{Name: "weights/model.pt", URI: "s3://runs/run-1/weights/model.pt", SHA256: digest[7:], Size: 10}}, DurationSeconds: 3}, 5),
	}
}

func fold(t *testing.T, evs []event.Event) JobStatus {
	t.Helper()
	var s JobStatus
	for _, e := range evs {
		if err := s.Apply(e); err != nil {
			t.Fatalf("Apply(%s) = %v", e.Type(), err)
		}
	}
	return s
}

func TestFoldInOrder(t *testing.T) {
	s := fold(t, chain(t))
	if s.State != StateSucceeded || s.RunID != "run-1" || s.Executor != "process" || s.Progress.Step != 8 || s.Metrics["accuracy"] != 0.75 || len(s.Artifacts) != 1 {
		t.Errorf("folded status = %+v", s)
	}
	var types []string
	for _, e := range s.Timeline {
		types = append(types, events.Type(e.Type).Short())
	}
	want := []string{"job.requested", "image.built", "run.started", "run.finished"}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if !s.Created.Equal(t0) || !s.Updated.Equal(t0.Add(5*time.Second)) {
		t.Errorf("created %v updated %v", s.Created, s.Updated)
	}
}

// TestFoldAnyOrderAnyDuplicates folds the chain shuffled, with every
// event delivered up to three times, and expects the in-order status.
func TestFoldAnyOrderAnyDuplicates(t *testing.T) {
	evs := chain(t)
	want := fold(t, evs)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		var in []event.Event
		for _, e := range evs {
			for n := 1 + r.IntN(3); n > 0; n-- {
				in = append(in, e)
			}
		}
		r.Shuffle(len(in), func(a, b int) { in[a], in[b] = in[b], in[a] })
		got := fold(t, in)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("order %d: status differs from the in-order fold (-want +got):\n%s", i, diff)
		}
	}
}

func TestFoldEndings(t *testing.T) {
	j := testJob()
	cancel := mk(t, events.JobCancelledData{Job: j.ID, Reason: "by hand"}, 10)
	started := mk(t, events.RunStartedData{Job: j, RunID: "run-1", Image: "x", Executor: "process", Output: "s3://runs/run-1/"}, 2)
	finished := func(status string) event.Event {
		d := events.RunFinishedData{Job: j.ID, RunID: "run-1", Status: status}
		if status != events.StatusSucceeded {
			d.Reason = "r"
		}
		return mk(t, d, 11)
	}
	failed := mk(t, events.ImageFailedData{Job: j.ID, Framework: "timm", Reason: "NoLock", Message: "no lock"}, 1)
	cases := []struct {
		desc  string
		evs   []event.Event
		state string
	}{
		{"cancel before it ran", []event.Event{mk(t, j, 0), cancel}, StateCancelled},
		{"cancel while running", []event.Event{mk(t, j, 0), started, cancel}, StateCancelling},
		{"cancel then the run's cancelled ending", []event.Event{mk(t, j, 0), started, cancel, finished(events.StatusCancelled)}, StateCancelled},
		{"the run's ending before the cancel", []event.Event{finished(events.StatusCancelled), cancel, started, mk(t, j, 0)}, StateCancelled},
		{"cancel after success changes nothing", []event.Event{mk(t, j, 0), started, finished(events.StatusSucceeded), cancel}, StateSucceeded},
		{"a late success after a cancel before it ran", []event.Event{mk(t, j, 0), cancel, started, finished(events.StatusSucceeded)}, StateSucceeded},
		{"image failure", []event.Event{mk(t, j, 0), failed}, StateFailed},
		{"run ending wins over an image failure", []event.Event{failed, finished(events.StatusSucceeded)}, StateSucceeded},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if got := fold(t, c.evs).State; got != c.state {
				t.Errorf("state = %s, want %s", got, c.state)
			}
			rev := append([]event.Event(nil), c.evs...)
			for a, b := 0, len(rev)-1; a < b; a, b = a+1, b-1 {
				rev[a], rev[b] = rev[b], rev[a]
			}
			if got := fold(t, rev).State; got != c.state {
				t.Errorf("reversed: state = %s, want %s", got, c.state)
			}
		})
	}
}

func TestFoldRefusesOtherJobs(t *testing.T) {
	evs := chain(t)
	var s JobStatus
	if err := s.Apply(evs[0]); err != nil {
		t.Fatal(err)
	}
	other := testJob()
	other.Hyperparameters.Epochs = 9
	other.ID = events.JobID(other.Dataset.Digest, other.Model, other.Hyperparameters)
	if err := s.Apply(mk(t, other, 1)); err == nil {
		t.Error("Apply(event of another job) = nil")
	}
}

func TestDatasetStatus(t *testing.T) {
	up := events.DatasetUploadedData{DatasetRef: testJob().Dataset, Name: "cats", Manifest: "cats/dataset.yaml", Files: 4, Bytes: 100}
	rej := events.DatasetRejectedData{Bucket: "datasets", Manifest: "cats/dataset.yaml", VersionID: "v1", Reasons: []events.FieldError{{Field: "train", Reason: "missing"}}}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2, 2, 0}} {
		evs := []event.Event{mk(t, rej, 0), mk(t, up, 5), mk(t, testJob(), 6)}
		var s DatasetStatus
		for _, i := range order {
			p, err := events.Decode(evs[i])
			if err != nil {
				t.Fatal(err)
			}
			s.Apply(evs[i], p)
		}
		if s.State != "uploaded" || s.Name != "cats" || len(s.Jobs) != 1 || s.Reasons != nil {
			t.Errorf("order %v: status = %+v, want uploaded (the latest) with one job", order, s)
		}
	}
}
