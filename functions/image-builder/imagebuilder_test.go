package imagebuilder_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/functions/funcyaml"
	imagebuilder "github.com/vision-platform/vp/functions/image-builder"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/local/ociregistry"
	"github.com/vision-platform/vp/registry"
)

const catalogYAML = `defaults:
  framework: tiny
  adapter: torchvision
  task: classification
  formats: [imagefolder]
  recommended: {epochs: 1, batchSize: 4, learningRate: 0.01}
  status: ready
  references: [https://example.com/tiny]
models:
  - name: net
    description: a model whose image is one small file
    adapterModel: {scratch: net.yaml, pretrained: net.pt}
  - name: fixed
    description: a model fixed at 224
    input: {size: 224, fixed: true}
  - name: later
    description: not ready
    status: unavailable
    reason: its image has no lock file yet
`

type env struct {
	specs, cache, repo, file string
	catalog                  *registry.Catalog
	sink                     *testsupport.Sink
}

func setup(t *testing.T) env {
	t.Helper()
	reg, err := ociregistry.New(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	specs := filepath.Join(dir, "specs")
	if err := os.MkdirAll(specs, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "payload.txt")
	if err := os.WriteFile(file, []byte("weights of a tiny model"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := "name: tiny\nframework: tiny\nbase: {scratch: true}\nlayers:\n  - name: payload\n    file: {src: ../payload.txt, dest: /opt/payload.txt}\n"
	if err := os.WriteFile(filepath.Join(specs, "tiny.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := registry.Load(fstest.MapFS{"tiny.yaml": {Data: []byte(catalogYAML)}})
	if err != nil {
		t.Fatal(err)
	}
	return env{specs: specs, cache: t.TempDir(), repo: strings.TrimPrefix(srv.URL, "http://") + "/vp", file: file, catalog: cat,
		sink: testsupport.NewSink(t, func(e event.Event) error { return events.Validate(e) })}
}

func (e env) start(t *testing.T, opts ...imagebuilder.Option) *imagebuilder.Function {
	t.Helper()
	s, err := sender.New(e.sink.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := imagebuilder.New(append([]imagebuilder.Option{
		imagebuilder.WithSpecs(e.specs), imagebuilder.WithCache(e.cache), imagebuilder.WithRegistry(e.repo),
		imagebuilder.WithCatalog(e.catalog), imagebuilder.WithSender(s), imagebuilder.WithLogger(zerolog.Nop()),
	}, opts...)...)
	if err := f.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return f
}

func jobEvent(t *testing.T, model string, hp events.Hyperparameters) event.Event {
	t.Helper()
	j := events.JobRequestedData{
		Dataset:         events.DatasetRef{Bucket: "datasets", Prefix: "cats/", Digest: "sha256:" + strings.Repeat("b", 64), Task: "classification", Format: "imagefolder"},
		Model:           events.ModelRef{Framework: "tiny", Name: model},
		Hyperparameters: hp,
	}
	j.ID = events.JobID(j.Dataset.Digest, j.Model, j.Hyperparameters)
	e, err := events.New(context.Background(), "/test", j)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var hp = events.Hyperparameters{Epochs: 1, BatchSize: 4, LearningRate: 0.01}

func built(t *testing.T, out *event.Event, err error) events.ImageBuiltData {
	t.Helper()
	if err != nil || out == nil {
		t.Fatalf("Handle() = %v, %v; want image.built", out, err)
	}
	var d events.ImageBuiltData
	if err := events.DecodeInto(*out, &d); err != nil {
		t.Fatalf("reply %s: %v", out.Type(), err)
	}
	return d
}

func TestFuncYAML(t *testing.T) {
	f, err := funcyaml.Parse("func.yaml", imagebuilder.FuncYAML)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Deploy.Subscriptions) != 1 || f.Deploy.Subscriptions[0].Filters["type"] != string(events.JobRequested) {
		t.Errorf("subscriptions = %+v", f.Deploy.Subscriptions)
	}
}

func TestInt_BuildThenCacheHit(t *testing.T) {
	testsupport.Integration(t)
	e := setup(t)
	f := e.start(t)
	in := jobEvent(t, "net", hp)
	out, err := f.Handle(context.Background(), in)
	first := built(t, out, err)
	if first.CacheHit || !strings.HasPrefix(first.Reference, e.repo+"/tiny@sha256:") || first.Request.ID != first.Job || len(first.Layers) != 1 {
		t.Errorf("first build = %+v", first)
	}
	if out.Extensions()[events.ExtJobID] != first.Job {
		t.Errorf("image.built jobid = %v", out.Extensions()[events.ExtJobID])
	}
	// The catalog's adapter and, from scratch, its scratch model argument.
	if want := (events.AdapterRef{Name: "torchvision", Model: "net.yaml"}); first.Adapter != want {
		t.Errorf("image.built adapter = %+v, want %+v", first.Adapter, want)
	}
	// Unchanged inputs: the answer comes from the record, a cache hit.
	out, err = f.Handle(context.Background(), jobEvent(t, "net", events.Hyperparameters{Epochs: 2, BatchSize: 4, LearningRate: 0.01}))
	second := built(t, out, err)
	if !second.CacheHit || second.Reference != first.Reference {
		t.Errorf("second = %+v, want a cache hit of %s", second, first.Reference)
	}
	// A restarted function keeps its record.
	g := e.start(t)
	out, err = g.Handle(context.Background(), in)
	if third := built(t, out, err); !third.CacheHit || third.Reference != first.Reference {
		t.Errorf("after a restart = %+v, want a cache hit", third)
	}
	// An input changes: built again, a new image.
	if err := os.WriteFile(e.file, []byte("other weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = g.Handle(context.Background(), in)
	if fourth := built(t, out, err); fourth.CacheHit || fourth.Reference == first.Reference {
		t.Errorf("after an input changed = %+v, want a new build", fourth)
	}
}

func TestInt_Refusals(t *testing.T) {
	testsupport.Integration(t)
	e := setup(t)
	f := e.start(t)
	cases := []struct {
		desc   string
		in     event.Event
		reason string
	}{
		{"unknown model", jobEvent(t, "nope", hp), imagebuilder.ReasonUnknownModel},
		{"unavailable model", jobEvent(t, "later", hp), imagebuilder.ReasonModelUnavailable},
		{"image size the model can't take", jobEvent(t, "fixed", events.Hyperparameters{Epochs: 1, BatchSize: 4, LearningRate: 0.01, ImageSize: 64}), imagebuilder.ReasonInvalidJob},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			out, err := f.Handle(context.Background(), c.in)
			if err != nil || out == nil || out.Type() != string(events.ImageFailed) {
				t.Fatalf("Handle() = %v, %v; want image.failed", out, err)
			}
			var d events.ImageFailedData
			if err := events.DecodeInto(*out, &d); err != nil {
				t.Fatal(err)
			}
			if d.Reason != c.reason || d.Message == "" {
				t.Errorf("image.failed = %+v, want reason %s", d, c.reason)
			}
		})
	}
	bad := jobEvent(t, "net", hp)
	bad.SetExtension(events.ExtJobID, "job-ffffffffffffffffffff")
	if _, err := f.Handle(context.Background(), bad); fn.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("Handle(invalid event) status %d, want 400", fn.StatusOf(err))
	}
	// A spec whose input is gone: the build fails, said in image.failed.
	if err := os.Remove(e.file); err != nil {
		t.Fatal(err)
	}
	out, err := f.Handle(context.Background(), jobEvent(t, "net", hp))
	if err != nil || out == nil || out.Type() != string(events.ImageFailed) || !strings.Contains(string(out.Data()), imagebuilder.ReasonBuildFailed) {
		t.Errorf("Handle() with a missing input = %v, %v; want image.failed BuildFailed", out, err)
	}
}

// TestInt_SlowBuildReportsByEvent: a build longer than the reply window is
// answered at once and reported through the sender; a job kept by an
// instance that stopped is taken up by the next.
func TestInt_SlowBuildReportsByEvent(t *testing.T) {
	testsupport.Integration(t)
	e := setup(t)
	f := e.start(t, imagebuilder.WithReplyWithin(time.Nanosecond))
	out, err := f.Handle(context.Background(), jobEvent(t, "net", hp))
	if err != nil || out != nil {
		t.Fatalf("Handle() = %v, %v; want no reply yet", out, err)
	}
	testsupport.Eventually(t, 30*time.Second, "image.built at the sink", func() bool { return len(e.sink.OfType(string(events.ImageBuilt))) == 1 })

	// A kept job (as a stopped instance leaves it) is reported at start.
	in := jobEvent(t, "net", events.Hyperparameters{Epochs: 3, BatchSize: 4, LearningRate: 0.01})
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var j events.JobRequestedData
	if err := events.DecodeInto(in, &j); err != nil {
		t.Fatal(err)
	}
	pending := filepath.Join(e.cache, "image-builder", "pending", j.ID+".json")
	if err := os.WriteFile(pending, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	testsupport.Eventually(t, 30*time.Second, "the kept job's image.built", func() bool { return len(e.sink.OfType(string(events.ImageBuilt))) == 2 })
	testsupport.Eventually(t, 10*time.Second, "the kept job forgotten", func() bool {
		_, err := os.Stat(pending)
		return os.IsNotExist(err)
	})
}

func TestStartSettings(t *testing.T) {
	cases := []struct {
		cfg  map[string]string
		want string
	}{
		{map[string]string{}, "VP_REGISTRY"},
		{map[string]string{"VP_REGISTRY": "127.0.0.1:5000/vp"}, "VP_IMAGE_SPECS"},
		{map[string]string{"VP_REGISTRY": "127.0.0.1:5000/vp", "VP_IMAGE_SPECS": "/nonexistent"}, "VP_IMAGE_SPECS"},
		{map[string]string{"VP_REGISTRY": "Bad Repo!"}, "VP_REGISTRY"},
	}
	for _, c := range cases {
		err := imagebuilder.New(imagebuilder.WithLogger(zerolog.Nop())).Start(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start(%v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
}
