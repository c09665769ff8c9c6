package imagebuilder_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	imagebuilder "github.com/vision-platform/vp/functions/image-builder"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/internal/weights"
)

// startWith starts the function with cfg as its settings.
func (e env) startWith(t *testing.T, cfg map[string]string, opts ...imagebuilder.Option) (*imagebuilder.Function, error) {
	t.Helper()
	s, err := sender.New(e.sink.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := imagebuilder.New(append([]imagebuilder.Option{
		imagebuilder.WithSpecs(e.specs), imagebuilder.WithCache(e.cache), imagebuilder.WithRegistry(e.repo),
		imagebuilder.WithCatalog(e.catalog), imagebuilder.WithSender(s), imagebuilder.WithLogger(zerolog.Nop()),
	}, opts...)...)
	if err := f.Start(context.Background(), cfg); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := f.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return f, nil
}

func answer(t *testing.T, f *imagebuilder.Function, in event.Event) (string, events.ImageFailedData) {
	t.Helper()
	out, err := f.Handle(context.Background(), in)
	if err != nil || out == nil {
		t.Fatalf("Handle() = %v, %v; want an answer", out, err)
	}
	var d events.ImageFailedData
	if out.Type() == string(events.ImageFailed) {
		if err := events.DecodeInto(*out, &d); err != nil {
			t.Fatal(err)
		}
	}
	return out.Type(), d
}

// TestInt_PretrainedWithoutWeights: offline (the default), a job asking
// for pretrained weights its model has none imported of is refused with
// the command that imports them; once imported, it builds. A job without
// pretrained, or a platform that reaches the model hub, is never refused.
func TestInt_PretrainedWithoutWeights(t *testing.T) {
	testsupport.Integration(t)
	e := setup(t)
	m := testsupport.StartMinIO(t)
	minioReady(t, m)
	store := objstore.FromMinIO(m.Client)
	s3 := map[string]string{"VP_S3_ENDPOINT": m.Endpoint, "VP_S3_ACCESS_KEY": testsupport.MinIOUser, "VP_S3_SECRET_KEY": testsupport.MinIOPassword}
	// The store from the settings (VP_S3_*), as vp up gives them.
	f, err := e.startWith(t, s3)
	if err != nil {
		t.Fatal(err)
	}
	pretrained := events.Hyperparameters{Epochs: 1, BatchSize: 4, LearningRate: 0.01, Pretrained: true}

	// No bucket yet, then an empty one: refused both times.
	for _, when := range []string{"no bucket", "empty bucket"} {
		typ, d := answer(t, f, jobEvent(t, "net", pretrained))
		if typ != string(events.ImageFailed) || d.Reason != imagebuilder.ReasonNoWeights ||
			!strings.Contains(d.Message, "`vp weights import FILE --model tiny/net`") || !strings.Contains(d.Message, "tiny/net has no imported pretrained weights") {
			t.Errorf("%s: answer %s %+v; want image.failed NoWeights naming `vp weights import FILE --model tiny/net`", when, typ, d)
		}
		if when == "no bucket" {
			m.Bucket(t, weights.DefaultBucket)
		}
	}
	// Without pretrained: built.
	if typ, d := answer(t, f, jobEvent(t, "net", hp)); typ != string(events.ImageBuilt) {
		t.Errorf("a job without pretrained: %s %+v, want image.built", typ, d)
	}
	// Weights imported: built.
	file := filepath.Join(t.TempDir(), "net.pt")
	if err := os.WriteFile(file, []byte("weights of net"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := weights.Import(context.Background(), store, events.ModelRef{Framework: "tiny", Name: "net"}, file); err != nil {
		t.Fatal(err)
	}
	if typ, d := answer(t, f, jobEvent(t, "net", pretrained)); typ != string(events.ImageBuilt) {
		t.Errorf("pretrained with imported weights: %s %+v, want image.built", typ, d)
	}
	// Another bucket has none; a reachable hub takes their place.
	g, err := e.startWith(t, map[string]string{"VP_WEIGHTS_BUCKET": "other"}, imagebuilder.WithStore(store))
	if err != nil {
		t.Fatal(err)
	}
	if typ, d := answer(t, g, jobEvent(t, "net", pretrained)); d.Reason != imagebuilder.ReasonNoWeights || !strings.Contains(d.Message, "s3://other/tiny/net/") {
		t.Errorf("VP_WEIGHTS_BUCKET=other: %s %+v, want NoWeights naming the bucket", typ, d)
	}
	h, err := e.startWith(t, map[string]string{"VP_WEIGHTS_BUCKET": "other", "VP_MODEL_HUB_REACHABLE": "true"}, imagebuilder.WithStore(store))
	if err != nil {
		t.Fatal(err)
	}
	if typ, d := answer(t, h, jobEvent(t, "net", pretrained)); typ != string(events.ImageBuilt) {
		t.Errorf("hub reachable: %s %+v, want image.built", typ, d)
	}

	// Bad settings stop the start, naming them.
	for _, c := range []struct{ key, value string }{{"VP_MODEL_HUB_REACHABLE", "maybe"}, {"VP_WEIGHTS_BUCKET", "a/b"}} {
		if _, err := e.startWith(t, map[string]string{c.key: c.value}, imagebuilder.WithStore(store)); err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("Start(%s=%s) = %v, want an error naming it", c.key, c.value, err)
		}
	}
}

// minioReady waits until MinIO's object layer answers (its health check
// answers before that, and StartMinIO with no bucket to make does not
// wait for it).
func minioReady(t *testing.T, m *testsupport.MinIO) {
	t.Helper()
	testsupport.Eventually(t, 30*time.Second, "MinIO's object layer", func() bool {
		_, err := m.Client.BucketExists(context.Background(), "probe")
		return err == nil
	})
}
