package jobtrigger

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/dataset/datasettest"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/registry"
)

type env struct {
	m     *testsupport.MinIO
	store *objstore.MinIO
	l     *ledger.Ledger
}

func setup(t *testing.T) *env {
	t.Helper()
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	m.Bucket(t, ledger.DefaultBucket)
	s := objstore.FromMinIO(m.Client)
	return &env{m: m, store: s, l: ledger.New(s, "")}
}

func (e *env) function(t *testing.T, opts ...Option) *Function {
	t.Helper()
	f := New(append([]Option{WithStore(e.store), WithLogger(zerolog.New(zerolog.NewTestWriter(t)))}, opts...)...)
	if err := f.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// upload stores the dataset in dir under prefix with the given
// dataset.yaml and its manifest.json, as the dataset-intake leaves it,
// and returns the dataset.uploaded event for it.
func (e *env) upload(t *testing.T, dir, prefix, spec string) event.Event {
	t.Helper()
	datasettest.WriteFile(t, dir, dataset.SpecName, []byte(spec))
	s, err := dataset.ParseSpec(dataset.SpecName, []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	e.m.PutDir(t, dir, "datasets", prefix)
	m, err := dataset.BuildManifest(context.Background(), os.DirFS(dir), s.Task, s.Format)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Client.PutObject(context.Background(), "datasets", prefix+dataset.ManifestName, bytes.NewReader(mb), int64(len(mb)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, err := events.New(context.Background(), "/test", events.DatasetUploadedData{
		DatasetRef: events.DatasetRef{Bucket: "datasets", Prefix: prefix, Digest: dataset.Digest(mb), Task: s.Task, Format: s.Format},
		Name:       s.Name, Manifest: prefix + dataset.SpecName, Files: len(m.Files), Bytes: m.Bytes(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func imageFolder(t *testing.T) string {
	dir := t.TempDir()
	datasettest.MakeImageFolder(t, dir, 4, 8)
	return dir
}

const petsSpec = "name: pets\ntask: classification\nformat: imagefolder\n"

func job(t *testing.T, out *event.Event, err error) events.JobRequestedData {
	t.Helper()
	if err != nil {
		t.Fatalf("Handle() = %v (status %d)", err, fn.StatusOf(err))
	}
	if out == nil || out.Type() != string(events.JobRequested) {
		t.Fatalf("Handle() = %v, want job.requested", out)
	}
	var j events.JobRequestedData
	if err := events.DecodeInto(*out, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

func rejected(t *testing.T, out *event.Event, err error) events.DatasetRejectedData {
	t.Helper()
	if err != nil {
		t.Fatalf("Handle() = %v", err)
	}
	if out == nil || out.Type() != string(events.DatasetRejected) {
		t.Fatalf("Handle() = %v, want dataset.rejected", out)
	}
	var r events.DatasetRejectedData
	if err := events.DecodeInto(*out, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestInt_Trigger(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	f := e.function(t)
	resnet, err := registry.Default().Lookup("torchvision", "resnet18")
	if err != nil {
		t.Fatal(err)
	}

	dir := imageFolder(t)
	in := e.upload(t, dir, "pets/v1/", petsSpec+"train:\n  model: torchvision/resnet18\n")
	var first events.JobRequestedData

	t.Run("a good ImageFolder with a train block: job.requested, catalog defaults filled", func(t *testing.T) {
		out, err := f.Handle(ctx, in)
		j := job(t, out, err)
		var d events.DatasetUploadedData
		if err := events.DecodeInto(in, &d); err != nil {
			t.Fatal(err)
		}
		want := events.JobRequestedData{
			ID: events.JobID(d.Digest, resnet.Ref(), resnet.Defaults()), Dataset: d.DatasetRef, Model: resnet.Ref(),
			Hyperparameters: resnet.Defaults(), RequestedBy: "job-trigger",
		}
		if diff := cmp.Diff(want, j); diff != "" {
			t.Errorf("job.requested (-want +got):\n%s", diff)
		}
		if j.Hyperparameters.Epochs == 0 || j.Hyperparameters.ImageSize != 224 {
			t.Errorf("hyperparameters %+v, want the catalog's defaults", j.Hyperparameters)
		}
		if err := events.Validate(*out); err != nil {
			t.Errorf("job.requested does not validate: %v", err)
		}
		tin, tout := in.Extensions()[events.ExtTraceparent].(string), out.Extensions()[events.ExtTraceparent].(string)
		if strings.Split(tin, "-")[1] != strings.Split(tout, "-")[1] || out.Extensions()[events.ExtJobID] != j.ID {
			t.Errorf("traceparent %s -> %s, jobid %v: want the trace continued and the job id set", tin, tout, out.Extensions()[events.ExtJobID])
		}
		first = j
	})

	t.Run("set hyperparameters are kept, the rest defaulted", func(t *testing.T) {
		in := e.upload(t, imageFolder(t), "pets/v2/", petsSpec+"train:\n  model: torchvision/resnet18\n  hyperparameters: {epochs: 2, seed: 7}\n  resources: {executor: process}\n")
		out, err := f.Handle(ctx, in)
		j := job(t, out, err)
		want := resnet.Defaults()
		want.Epochs, want.Seed = 2, 7
		if diff := cmp.Diff(want, j.Hyperparameters); diff != "" {
			t.Errorf("hyperparameters (-want +got):\n%s", diff)
		}
		if j.Resources.Executor != "process" {
			t.Errorf("resources %+v", j.Resources)
		}
	})

	t.Run("identical content under another prefix: the same job; none once the ledger has it", func(t *testing.T) {
		copyIn := e.upload(t, dir, "copies/pets/", petsSpec+"train:\n  model: torchvision/resnet18\n")
		out, err := f.Handle(ctx, copyIn)
		if j := job(t, out, err); j.ID != first.ID {
			t.Errorf("job %s for the copy, want %s (same content, model, hyperparameters)", j.ID, first.ID)
		}
		if err := e.l.Record(ctx, *out); err != nil {
			t.Fatal(err)
		}
		for _, ev := range []event.Event{in, copyIn} {
			if out, err := f.Handle(ctx, ev); out != nil || err != nil {
				t.Errorf("Handle() with the job in the ledger = %v, %v; want nothing", out, err)
			}
		}
	})

	t.Run("retrain: true asks for a new job", func(t *testing.T) {
		in := e.upload(t, dir, "retrained/pets/", petsSpec+"retrain: true\ntrain:\n  model: torchvision/resnet18\n")
		out, err := f.Handle(ctx, in)
		j := job(t, out, err)
		if j.ID == first.ID || j.Hyperparameters.Extra["retrain"] != in.ID() {
			t.Errorf("retrain job %s (extra %v), want a new id marked with the event %s", j.ID, j.Hyperparameters.Extra, in.ID())
		}
	})

	t.Run("a broken YOLO dataset is rejected naming file and line", func(t *testing.T) {
		dir := t.TempDir()
		datasettest.MakeYOLO(t, dir, datasettest.Boxes, 4, 16)
		datasettest.WriteFile(t, dir, "labels/train/train_001.txt", []byte("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n"))
		in := e.upload(t, dir, "parts/v1/", "name: parts\ntask: detection\nformat: yolo\ntrain:\n  model: ultralytics/yolov8n\n")
		out, err := f.Handle(ctx, in)
		r := rejected(t, out, err)
		if r.Manifest != "parts/v1/dataset.yaml" || len(r.Reasons) != 1 || r.Reasons[0].Field != "labels/train/train_001.txt:2" || !strings.Contains(r.Reasons[0].Reason, "class 7") {
			t.Errorf("dataset.rejected = %+v, want labels/train/train_001.txt:2 naming class 7", r)
		}
	})

	t.Run("an unknown model is rejected naming train.model", func(t *testing.T) {
		in := e.upload(t, imageFolder(t), "pets/v3/", petsSpec+"train:\n  model: torchvision/resnet999\n")
		out, err := f.Handle(ctx, in)
		r := rejected(t, out, err)
		want := []events.FieldError{{Field: "dataset.yaml:5", Reason: "train.model: no model torchvision/resnet999 in the catalog"}}
		if diff := cmp.Diff(want, r.Reasons); diff != "" {
			t.Errorf("reasons (-want +got):\n%s", diff)
		}
	})

	t.Run("a model that does not fit the dataset, an image size it cannot take", func(t *testing.T) {
		cat, err := registry.Load(fstest.MapFS{"t.yaml": {Data: []byte(`defaults:
  framework: tiny
  adapter: torchvision
  task: classification
  formats: [imagefolder]
  recommended: {epochs: 1, batchSize: 4, learningRate: 0.01}
  status: ready
  references: [https://example.com/tiny]
models:
  - name: fixed
    description: a model fixed at 224
    input: {size: 224, fixed: true}
  - name: boxes
    description: a detector
    task: detection
    formats: [yolo]
`)}})
		if err != nil {
			t.Fatal(err)
		}
		g := e.function(t, WithCatalog(cat))
		in := e.upload(t, imageFolder(t), "pets/v4/", petsSpec+"train:\n  model: tiny/fixed\n  hyperparameters:\n    imageSize: 320\n")
		out, err := g.Handle(ctx, in)
		r := rejected(t, out, err)
		if len(r.Reasons) != 1 || r.Reasons[0].Field != "dataset.yaml:7" || !strings.HasPrefix(r.Reasons[0].Reason, "train.hyperparameters.imageSize: tiny/fixed takes 224") {
			t.Errorf("reasons = %+v, want dataset.yaml:7 train.hyperparameters.imageSize", r.Reasons)
		}
		in = e.upload(t, imageFolder(t), "pets/v5/", petsSpec+"train:\n  model: tiny/boxes\n")
		out, err = g.Handle(ctx, in)
		r = rejected(t, out, err)
		if len(r.Reasons) != 2 || r.Reasons[0].Field != "dataset.yaml:5" || !strings.HasPrefix(r.Reasons[0].Reason, "train.model: tiny/boxes takes yolo datasets, not imagefolder") {
			t.Errorf("reasons = %+v, want train.model named for the format and the task", r.Reasons)
		}
	})

	t.Run("no policy: no reply", func(t *testing.T) {
		in := e.upload(t, imageFolder(t), "nopolicy/pets/", petsSpec)
		if out, err := f.Handle(ctx, in); out != nil || err != nil {
			t.Errorf("Handle() = %v, %v; want nothing", out, err)
		}
	})

	t.Run("rules from the configuration; dataset.yaml's train block wins", func(t *testing.T) {
		g := New(WithLogger(zerolog.New(zerolog.NewTestWriter(t))))
		err := g.Start(ctx, map[string]string{
			"VP_S3_ENDPOINT": e.m.Endpoint, "VP_S3_ACCESS_KEY": testsupport.MinIOUser, "VP_S3_SECRET_KEY": testsupport.MinIOPassword,
			"VP_TRIGGER_RULES": "rules:\n  - bucket: datasets\n    prefix: ruled/*\n    model: torchvision/resnet18\n    hyperparameters: {epochs: 3}\n",
		})
		if err != nil {
			t.Fatal(err)
		}
		in := e.upload(t, imageFolder(t), "ruled/pets/", petsSpec)
		out, err := g.Handle(ctx, in)
		if j := job(t, out, err); j.Model != resnet.Ref() || j.Hyperparameters.Epochs != 3 || j.Hyperparameters.BatchSize != resnet.Recommended.BatchSize {
			t.Errorf("job from the rule = %+v", j)
		}
		in = e.upload(t, imageFolder(t), "ruled/cats/", petsSpec+"train:\n  model: torchvision/resnet18\n  hyperparameters: {epochs: 9}\n")
		out, err = g.Handle(ctx, in)
		if j := job(t, out, err); j.Hyperparameters.Epochs != 9 {
			t.Errorf("job = %+v, want the train block's epochs, not the rule's", j.Hyperparameters)
		}
		in = e.upload(t, imageFolder(t), "ruled/deeper/pets/", petsSpec)
		if out, err := g.Handle(ctx, in); out != nil || err != nil {
			t.Errorf("Handle() outside the rule's glob = %v, %v; want nothing", out, err)
		}
	})

	t.Run("a missing manifest.json is rejected; a changed one is stale", func(t *testing.T) {
		in := e.upload(t, imageFolder(t), "stale/pets/", petsSpec+"train:\n  model: torchvision/resnet18\n")
		if _, err := e.m.Client.PutObject(ctx, "datasets", "stale/pets/manifest.json", strings.NewReader("{}\n"), 3, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if out, err := f.Handle(ctx, in); out != nil || err != nil {
			t.Errorf("Handle() of a stale event = %v, %v; want nothing", out, err)
		}
		if err := e.m.Client.RemoveObject(ctx, "datasets", "stale/pets/manifest.json", minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		out, err := f.Handle(ctx, in)
		r := rejected(t, out, err)
		if len(r.Reasons) != 1 || r.Reasons[0].Field != "manifest.json" {
			t.Errorf("reasons = %+v, want manifest.json", r.Reasons)
		}
	})

	t.Run("a dataset that is gone is refused; an invalid event refused", func(t *testing.T) {
		in := e.upload(t, imageFolder(t), "gone/pets/", petsSpec)
		if err := e.m.Client.RemoveObject(ctx, "datasets", "gone/pets/dataset.yaml", minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Handle(ctx, in); fn.StatusOf(err) != http.StatusBadRequest {
			t.Errorf("Handle() of a dataset that is gone = %v, want 400", err)
		}
		bad := in.Clone()
		if err := bad.SetData(events.ContentType, map[string]any{"bucket": "datasets"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Handle(ctx, bad); fn.StatusOf(err) != http.StatusBadRequest {
			t.Errorf("Handle() of an invalid event = %v, want 400", err)
		}
	})

	t.Run("served over HTTP, the reply is the next event", func(t *testing.T) {
		h, err := fn.Handler(f)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		in := e.upload(t, imageFolder(t), "http/pets/", petsSpec+"train:\n  model: torchvision/resnet18\n  hyperparameters: {epochs: 4}\n")
		status, out, body := testsupport.Deliver(t, srv.URL, in)
		if out == nil {
			t.Fatalf("no reply: %d %s", status, body)
		}
		if j := job(t, out, nil); j.Hyperparameters.Epochs != 4 {
			t.Errorf("reply = %+v", j)
		}
	})
}

// TestInt_TriggerStoreDown: a store that does not answer is a 503 the
// broker retries.
func TestInt_TriggerStoreDown(t *testing.T) {
	testsupport.Integration(t)
	store, err := objstore.NewMinIO("http://"+testsupport.FreeAddr(t), objstore.Credentials{AccessKey: "a", SecretKey: "b"}, false)
	if err != nil {
		t.Fatal(err)
	}
	f := New(WithStore(store), WithTimeout(2*time.Second), WithLogger(zerolog.New(zerolog.NewTestWriter(t))))
	if err := f.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	in, err := events.New(context.Background(), "/test", events.DatasetUploadedData{
		DatasetRef: events.DatasetRef{Bucket: "datasets", Prefix: "pets/", Digest: "sha256:" + strings.Repeat("a", 64), Task: "classification", Format: "imagefolder"},
		Name:       "pets", Manifest: "pets/dataset.yaml", Files: 1, Bytes: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := f.Handle(context.Background(), in); out != nil || fn.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("Handle() with the store down = %v, %v; want 503", out, err)
	}
}
