package datasetintake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/tags"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/functions/funcyaml"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/dataset/datasettest"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
	localminio "github.com/vision-platform/vp/local/minio"
)

const token = "s3cr3t-intake-token"

func TestFuncYAML(t *testing.T) {
	f, err := funcyaml.Parse("func.yaml", FuncYAML)
	if err != nil {
		t.Fatalf("Parse(func.yaml) = %v", err)
	}
	if f.Name != "dataset-intake" || f.Invoke != funcyaml.InvokeHTTP || len(f.Deploy.Subscriptions) != 0 {
		t.Errorf("func.yaml: name %q, invoke %q, %d subscriptions; want dataset-intake, http, none", f.Name, f.Invoke, len(f.Deploy.Subscriptions))
	}
	for _, s := range Settings {
		if v, ok := f.Env(s); !ok || v != "{{ env:"+s+" }}" {
			t.Errorf("func.yaml run.envs %s = %q, %v; want {{ env:%s }}", s, v, ok, s)
		}
	}
}

func TestStartSettings(t *testing.T) {
	base := map[string]string{"VP_INTAKE_TOKEN": "t", "VP_S3_ENDPOINT": "127.0.0.1:1", "K_SINK": "http://127.0.0.1:1/"}
	with := func(k, v string) map[string]string {
		c := map[string]string{}
		for a, b := range base {
			c[a] = b
		}
		if v == "" {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	for _, c := range []struct {
		cfg  map[string]string
		want string
	}{
		{with("VP_INTAKE_TOKEN", ""), "VP_INTAKE_TOKEN: required"},
		{with("VP_INTAKE_TIMEOUT", "forever"), "VP_INTAKE_TIMEOUT:"},
		{with("VP_INTAKE_TIMEOUT", "1m"), "VP_INTAKE_TIMEOUT: 1m0s is not above 0 and at most 25s"},
		{with("VP_INTAKE_ARCHIVE_MAX_RATIO", "-3"), "VP_INTAKE_ARCHIVE_MAX_RATIO:"},
		{with("VP_INTAKE_ARCHIVE_MAX_ENTRIES", "0"), "VP_INTAKE_ARCHIVE_*:"},
		{with("VP_S3_ENDPOINT", ""), "VP_S3_ENDPOINT is not set"},
		{with("K_SINK", ""), "K_SINK"},
		{with("K_SINK", "not a url"), "K_SINK:"},
		{with("VP_LOG_FORMAT", "xml"), "VP_LOG_FORMAT:"},
	} {
		err := New().Start(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start(%v) = %v, want an error with %q", c.cfg, err, c.want)
		}
	}
	f := New()
	if err := f.Start(context.Background(), base); err != nil {
		t.Fatalf("Start(%v) = %v", base, err)
	}
	if ok, _ := f.Ready(context.Background()); !ok {
		t.Error("Ready() = false after Start")
	}
}

// hook serves the intake as func-go does and records what it answered to
// each key, so that a test knows when a notification has been handled.
type hook struct {
	*httptest.Server
	mu      sync.Mutex
	h       http.Handler
	handled map[string][]int    // bucket/key → the statuses answered
	bodies  map[string][][]byte // bucket/key → the notifications
}

func newHook(t *testing.T) *hook {
	h := &hook{handled: map[string][]int{}, bodies: map[string][][]byte{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("hook: %v", err)
		}
		h.mu.Lock()
		inner := h.h
		h.mu.Unlock()
		if inner == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		objs, _, _ := parseNotification(body)
		h.mu.Lock()
		for _, o := range objs {
			k := o.Bucket + "/" + o.Key
			h.handled[k] = append(h.handled[k], rec.Code)
			h.bodies[k] = append(h.bodies[k], body)
		}
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) serve(t *testing.T, f *Function) {
	t.Helper()
	handler, err := fn.Handler(f)
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.h = handler
	h.mu.Unlock()
}

// wait waits until the notification of bucket/key has been answered 200.
func (h *hook) wait(t *testing.T, bucket, key string) {
	t.Helper()
	testsupport.Eventually(t, 20*time.Second, "the notification of "+bucket+"/"+key, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, s := range h.handled[bucket+"/"+key] {
			if s == http.StatusOK {
				return true
			}
		}
		return false
	})
}

func (h *hook) body(t *testing.T, bucket, key string) []byte {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.bodies[bucket+"/"+key]
	if len(b) == 0 {
		t.Fatalf("no notification of %s/%s", bucket, key)
	}
	return b[0]
}

// post sends a notification body to the intake as MinIO would.
func post(t *testing.T, url, auth string, body []byte) (int, answer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("answer %q: %v", b, err)
		}
	}
	return resp.StatusCode, a
}

// notify builds a one-record notification.
func notify(eventName, bucket, key string) []byte {
	r := record{EventName: eventName}
	r.S3.Bucket.Name = bucket
	r.S3.Object.Key = strings.ReplaceAll(strings.ReplaceAll(key, "/", "%2F"), " ", "+")
	b, _ := json.Marshal(notification{EventName: eventName, Key: bucket + "/" + key, Records: []record{r}})
	return b
}

type env struct {
	m     *localminio.Server
	store *objstore.MinIO
	hook  *hook
	sink  *testsupport.Sink
	f     *Function
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

// setup runs MinIO with a webhook target (queue_dir on) to the intake, and
// the intake posting to a sink.
func setup(t *testing.T, buckets ...string) *env {
	t.Helper()
	testsupport.Integration(t)
	e := &env{hook: newHook(t), sink: testsupport.NewSink(t, events.Validate)}
	var bs []localminio.Bucket
	for _, b := range buckets {
		bs = append(bs, localminio.Bucket{Name: b, Notify: []string{"vp"}})
	}
	m, err := localminio.Start(context.Background(), localminio.Config{
		Binary: testsupport.MinIOBinary(t), DataDir: t.TempDir(), Addr: testsupport.FreeAddr(t), ConsoleAddr: testsupport.FreeAddr(t),
		User: testsupport.MinIOUser, Password: testsupport.MinIOPassword,
		Webhooks: []localminio.Webhook{{ID: "vp", Endpoint: e.hook.URL, Token: token, QueueDir: t.TempDir()}},
		Buckets:  bs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	e.m, e.store = m, objstore.FromMinIO(m.Client)
	e.f = e.newFunction(t)
	e.hook.serve(t, e.f)
	return e
}

func (e *env) newFunction(t *testing.T, opts ...Option) *Function {
	t.Helper()
	s, err := sender.New(e.sink.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := New(append([]Option{WithStore(e.store), WithSender(s), WithToken(token), WithLogger(testLogger(t))}, opts...)...)
	if err := f.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return f
}

func (e *env) put(t *testing.T, bucket, key string, data []byte) {
	t.Helper()
	if _, err := e.m.Client.PutObject(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// putDir uploads a local dataset's files under prefix, dataset.yaml
// excepted, and returns their keys.
func (e *env) putDir(t *testing.T, dir, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() == dataset.SpecName {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		keys = append(keys, prefix+filepath.ToSlash(rel))
		e.put(t, bucket, prefix+filepath.ToSlash(rel), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func (e *env) get(t *testing.T, bucket, key string) []byte {
	t.Helper()
	r, err := e.m.Client.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s/%s: %v", bucket, key, err)
	}
	return b
}

// uploaded are the dataset.uploaded events of one bucket the sink got.
func (e *env) uploaded(t *testing.T, bucket string) ([]events.DatasetUploadedData, []event.Event) {
	t.Helper()
	var out []events.DatasetUploadedData
	var evs []event.Event
	for _, ev := range e.sink.OfType(string(events.DatasetUploaded)) {
		var d events.DatasetUploadedData
		if err := events.DecodeInto(ev, &d); err != nil {
			t.Fatal(err)
		}
		if d.Bucket == bucket {
			out = append(out, d)
			evs = append(evs, ev)
		}
	}
	return out, evs
}

func (e *env) rejected(t *testing.T, bucket string) []events.DatasetRejectedData {
	t.Helper()
	var out []events.DatasetRejectedData
	for _, ev := range e.sink.OfType(string(events.DatasetRejected)) {
		var d events.DatasetRejectedData
		if err := events.DecodeInto(ev, &d); err != nil {
			t.Fatal(err)
		}
		if d.Bucket == bucket {
			out = append(out, d)
		}
	}
	return out
}

// checkManifest checks the manifest.json under prefix against the event
// and the objects: the event's digest is the manifest's, and the manifest
// lists every data object with its size and sha256.
func (e *env) checkManifest(t *testing.T, d events.DatasetUploadedData, dir string) {
	t.Helper()
	raw := e.get(t, d.Bucket, d.Prefix+dataset.ManifestName)
	if got := dataset.Digest(raw); got != d.Digest {
		t.Errorf("event digest %s, manifest.json's %s", d.Digest, got)
	}
	m, err := dataset.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dataset.BuildManifest(context.Background(), os.DirFS(dir), d.Task, d.Format)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("manifest.json (-want, built from the local copy +got):\n%s", diff)
	}
	if d.Files != len(m.Files) || d.Bytes != m.Bytes() {
		t.Errorf("event says %d files, %d bytes; manifest %d, %d", d.Files, d.Bytes, len(m.Files), m.Bytes())
	}
}

// imageFolder writes a small ImageFolder dataset with a key holding a
// space and unicode, and returns its folder.
func imageFolder(t *testing.T) string {
	dir := t.TempDir()
	datasettest.MakeImageFolder(t, dir, 4, 8)
	datasettest.WriteFile(t, dir, "train/cat/gato ü 猫.png", datasettest.PNG(t, 8, color.RGBA{R: 200, A: 255}))
	return dir
}

func spec(name string, extra string) []byte {
	return []byte("name: " + name + "\ntask: classification\nformat: imagefolder\n" + extra)
}

func TestInt_Intake(t *testing.T) {
	e := setup(t, "last", "first", "burst", "tags", "bad", "archives", "badarchives", "redeliver")
	ctx := context.Background()

	t.Run("dataset.yaml last: one dataset.uploaded, keys with spaces and unicode", func(t *testing.T) {
		t.Parallel()
		dir := imageFolder(t)
		keys := e.putDir(t, dir, "last", "pets v1/")
		for _, k := range keys {
			e.hook.wait(t, "last", k)
		}
		if got, _ := e.uploaded(t, "last"); len(got) != 0 {
			t.Fatalf("dataset.uploaded before dataset.yaml: %+v", got)
		}
		e.put(t, "last", "pets v1/dataset.yaml", spec("pets", ""))
		testsupport.Eventually(t, 20*time.Second, "dataset.uploaded", func() bool { got, _ := e.uploaded(t, "last"); return len(got) > 0 })
		e.hook.wait(t, "last", "pets v1/manifest.json")
		got, _ := e.uploaded(t, "last")
		if len(got) != 1 {
			t.Fatalf("%d dataset.uploaded, want 1", len(got))
		}
		d := got[0]
		if d.Prefix != "pets v1/" || d.Manifest != "pets v1/dataset.yaml" || d.Name != "pets" || d.Task != "classification" || d.Format != "imagefolder" || d.Files != len(keys) {
			t.Errorf("dataset.uploaded = %+v", d)
		}
		e.checkManifest(t, d, dir)
	})

	t.Run("dataset.yaml first with counts: one event once the last file lands, never earlier", func(t *testing.T) {
		t.Parallel()
		dir := imageFolder(t)
		want, err := dataset.BuildManifest(ctx, os.DirFS(dir), "classification", "imagefolder")
		if err != nil {
			t.Fatal(err)
		}
		e.put(t, "first", "pets/dataset.yaml", spec("pets", fmt.Sprintf("files: %d\nbytes: %d\n", len(want.Files), want.Bytes())))
		e.hook.wait(t, "first", "pets/dataset.yaml")
		// In three batches (MinIO's queue delivers every few seconds): each
		// notification of the first two sees a partial set.
		n := len(want.Files)
		for _, batch := range [][]dataset.File{want.Files[:n/2], want.Files[n/2 : n-1], want.Files[n-1:]} {
			for _, f := range batch {
				b, err := os.ReadFile(filepath.Join(dir, f.Path))
				if err != nil {
					t.Fatal(err)
				}
				e.put(t, "first", "pets/"+f.Path, b)
			}
			for _, f := range batch {
				e.hook.wait(t, "first", "pets/"+f.Path)
			}
			if got, _ := e.uploaded(t, "first"); len(batch) > 1 && len(got) != 0 {
				t.Fatalf("dataset.uploaded before the last file landed: %+v", got)
			}
		}
		e.hook.wait(t, "first", "pets/manifest.json")
		got, _ := e.uploaded(t, "first")
		if len(got) != 1 {
			t.Fatalf("%d dataset.uploaded, want 1", len(got))
		}
		e.checkManifest(t, got[0], dir)
	})

	t.Run("a burst of files after the manifest gives one event", func(t *testing.T) {
		t.Parallel()
		const n = 300
		dir := t.TempDir()
		for i := range n {
			datasettest.WriteFile(t, dir, fmt.Sprintf("train/%s/%03d.png", []string{"cat", "dog"}[i%2], i), []byte(fmt.Sprintf("image %d", i)))
		}
		e.put(t, "burst", "many/dataset.yaml", spec("many", fmt.Sprintf("files: %d\n", n)))
		e.hook.wait(t, "burst", "many/dataset.yaml")
		g := errgroup.Group{}
		g.SetLimit(16)
		for i := range n {
			g.Go(func() error {
				key := fmt.Sprintf("many/train/%s/%03d.png", []string{"cat", "dog"}[i%2], i)
				b := []byte(fmt.Sprintf("image %d", i))
				_, err := e.m.Client.PutObject(ctx, "burst", key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{})
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			e.hook.wait(t, "burst", fmt.Sprintf("many/train/%s/%03d.png", []string{"cat", "dog"}[i%2], i))
		}
		e.hook.wait(t, "burst", "many/manifest.json")
		got, _ := e.uploaded(t, "burst")
		if len(got) != 1 {
			t.Fatalf("%d dataset.uploaded for a burst of %d files, want 1", len(got), n)
		}
		e.checkManifest(t, got[0], dir)
	})

	t.Run("tagging and deletes are ignored", func(t *testing.T) {
		t.Parallel()
		dir := imageFolder(t)
		e.putDir(t, dir, "tags", "pets/")
		e.put(t, "tags", "pets/dataset.yaml", spec("pets", ""))
		e.hook.wait(t, "tags", "pets/manifest.json")
		tg, err := tags.MapToObjectTags(map[string]string{"team": "vision"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.m.Client.PutObjectTagging(ctx, "tags", "pets/dataset.yaml", tg, minio.PutObjectTaggingOptions{}); err != nil {
			t.Fatal(err)
		}
		testsupport.Eventually(t, 20*time.Second, "the tagging notification", func() bool {
			e.hook.mu.Lock()
			defer e.hook.mu.Unlock()
			return len(e.hook.handled["tags/pets/dataset.yaml"]) >= 2
		})
		for _, ev := range []string{"s3:ObjectRemoved:Delete", "s3:ObjectCreated:PutRetention", "s3:ObjectCreated:PutLegalHold", "s3:ObjectAccessed:Get", "s3:ObjectCreated:DeleteTagging"} {
			status, a := post(t, e.hook.URL, "Bearer "+token, notify(ev, "tags", "pets/dataset.yaml"))
			if status != http.StatusOK || a.Ignored != 1 || len(a.Events) != 0 {
				t.Errorf("POST %s = %d %+v, want 200, ignored", ev, status, a)
			}
		}
		if got, _ := e.uploaded(t, "tags"); len(got) != 1 {
			t.Errorf("%d dataset.uploaded, want 1 (for the upload, none for the tags)", len(got))
		}
	})

	t.Run("an invalid dataset.yaml is rejected, naming file, line and field", func(t *testing.T) {
		t.Parallel()
		e.put(t, "bad", "pets/train/cat/1.png", []byte("png"))
		e.put(t, "bad", "pets/dataset.yaml", []byte("name: pets\ntask: classification\nformat: imagefolder\nfiles: many\n"))
		testsupport.Eventually(t, 20*time.Second, "dataset.rejected", func() bool { return len(e.rejected(t, "bad")) > 0 })
		r := e.rejected(t, "bad")[0]
		if r.Manifest != "pets/dataset.yaml" || len(r.Reasons) != 1 || r.Reasons[0].Field != "dataset.yaml:4" || !strings.Contains(r.Reasons[0].Reason, "files") {
			t.Errorf("dataset.rejected = %+v, want dataset.yaml:4 naming files", r)
		}
		e.put(t, "bad", "root/a.png", []byte("1"))
		e.put(t, "bad", "root/b.png", []byte("2"))
		e.put(t, "bad", "root/dataset.yaml", []byte("name: r\ntask: classification\nformat: imagefolder\nfiles: 1\n"))
		testsupport.Eventually(t, 20*time.Second, "dataset.rejected for more files than declared", func() bool { return len(e.rejected(t, "bad")) > 1 })
		r = e.rejected(t, "bad")[1]
		if r.Manifest != "root/dataset.yaml" || r.Reasons[0].Field != "dataset.yaml:4" || !strings.Contains(r.Reasons[0].Reason, "1 data files declared, 2 under root/") {
			t.Errorf("dataset.rejected = %+v, want the count named", r)
		}
		if got, _ := e.uploaded(t, "bad"); len(got) != 0 {
			t.Errorf("dataset.uploaded for rejected datasets: %+v", got)
		}
	})

	t.Run("redelivered notification: no second post; a new instance posts the same id", func(t *testing.T) {
		t.Parallel()
		dir := imageFolder(t)
		e.putDir(t, dir, "redeliver", "pets/")
		e.put(t, "redeliver", "pets/dataset.yaml", spec("pets", ""))
		e.hook.wait(t, "redeliver", "pets/manifest.json")
		body := e.hook.body(t, "redeliver", "pets/dataset.yaml")
		status, a := post(t, e.hook.URL, "Bearer "+token, body)
		if status != http.StatusOK || len(a.Events) != 0 {
			t.Errorf("redelivery = %d %+v, want 200 and nothing posted", status, a)
		}
		_, evs := e.uploaded(t, "redeliver")
		if len(evs) != 1 {
			t.Fatalf("%d dataset.uploaded after a redelivery, want 1", len(evs))
		}
		fresh := e.newFunction(t)
		h, err := fn.Handler(fresh)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		status, a = post(t, srv.URL, "Bearer "+token, body)
		if status != http.StatusOK || len(a.Events) != 1 {
			t.Fatalf("a new instance = %d %+v, want one event", status, a)
		}
		_, evs = e.uploaded(t, "redeliver")
		if len(evs) != 2 || evs[0].ID() != evs[1].ID() {
			t.Errorf("ids %q, want the same id twice", []string{evs[0].ID(), evs[len(evs)-1].ID()})
		}
	})

	t.Run("archives are unpacked into a prefix named after them", func(t *testing.T) {
		t.Parallel()
		dir := imageFolder(t)
		var entries []entry
		err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			b, err := os.ReadFile(p)
			entries = append(entries, entry{name: "pets/" + filepath.ToSlash(rel), body: string(b)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, entry{name: "pets/dataset.yaml", body: string(spec("pets", ""))})
		e.put(t, "archives", "uploads/pets zip.zip", makeZip(t, entries...))
		e.put(t, "archives", "uploads/pets-tgz.tar.gz", makeTarGz(t, entries...))
		testsupport.Eventually(t, 30*time.Second, "two dataset.uploaded", func() bool { got, _ := e.uploaded(t, "archives"); return len(got) >= 2 })
		got, _ := e.uploaded(t, "archives")
		prefixes := map[string]events.DatasetUploadedData{}
		for _, d := range got {
			prefixes[d.Prefix] = d
		}
		for _, p := range []string{"uploads/pets zip/", "uploads/pets-tgz/"} {
			d, ok := prefixes[p]
			if !ok {
				t.Errorf("no dataset.uploaded for %s (got %v)", p, prefixes)
				continue
			}
			e.checkManifest(t, d, dir)
		}
		if a, b := prefixes["uploads/pets zip/"].Digest, prefixes["uploads/pets-tgz/"].Digest; a != b {
			t.Errorf("the same content unpacked from zip and tar.gz has digests %s and %s", a, b)
		}
	})

	t.Run("unsafe archives are rejected and nothing is written", func(t *testing.T) {
		t.Parallel()
		specE := entry{name: "dataset.yaml", body: string(spec("x", ""))}
		img := entry{name: "train/cat/1.png", body: "png"}
		cases := map[string]struct {
			data  []byte
			field string
			want  string
		}{
			"slip.zip":  {makeZip(t, specE, img, entry{name: "../../escaped.png", body: "x"}), "../../escaped.png", "climbs out"},
			"link.tgz":  {makeTarGz(t, specE, img, entry{name: "train/cat/2.png", tar: '2', link: "/etc/passwd"}), "train/cat/2.png", "symbolic link"},
			"bomb.zip":  {makeZip(t, specE, img, entry{name: "train/cat/z.png", body: strings.Repeat("\x00", 16<<20)}), "train/cat/z.png", "zip bomb"},
			"empty.zip": {makeZip(t, img), "empty.zip", "no dataset.yaml"},
		}
		for name, c := range cases {
			e.put(t, "badarchives", name, c.data)
		}
		testsupport.Eventually(t, 30*time.Second, "four dataset.rejected", func() bool { return len(e.rejected(t, "badarchives")) >= len(cases) })
		for _, r := range e.rejected(t, "badarchives") {
			c := cases[r.Manifest]
			if len(r.Reasons) != 1 || r.Reasons[0].Field != c.field || !strings.Contains(r.Reasons[0].Reason, c.want) {
				t.Errorf("dataset.rejected for %s = %+v, want %s: ...%s...", r.Manifest, r.Reasons, c.field, c.want)
			}
		}
		var keys []string
		for oi := range e.m.Client.ListObjects(ctx, "badarchives", minio.ListObjectsOptions{Recursive: true}) {
			keys = append(keys, oi.Key)
		}
		if diff := cmp.Diff([]string{"bomb.zip", "empty.zip", "link.tgz", "slip.zip"}, keys); diff != "" {
			t.Errorf("objects after the rejections (-want +got):\n%s", diff)
		}
	})

	t.Run("auth, ping, HEAD, body limit", func(t *testing.T) {
		t.Parallel()
		body := notify("s3:ObjectCreated:Put", "authz", "pets/dataset.yaml")
		for _, auth := range []string{"", "Bearer wrong", "Basic " + token, token, "Bearer " + token + "x"} {
			status, a := post(t, e.hook.URL, auth, body)
			if status != http.StatusUnauthorized || a.Error == "" {
				t.Errorf("POST with Authorization %q = %d %+v, want 401 with an error", auth, status, a)
			}
		}
		if got, _ := e.uploaded(t, "authz"); len(got) != 0 {
			t.Errorf("unauthorized notifications posted %d events", len(got))
		}
		for _, ping := range []string{"", "{}", `{"EventName":"","Key":"","Records":null}`} {
			if status, _ := post(t, e.hook.URL, "Bearer "+token, []byte(ping)); status != http.StatusOK {
				t.Errorf("test ping %q = %d, want 200", ping, status)
			}
		}
		resp, err := http.Head(e.hook.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("HEAD = %d, want 200", resp.StatusCode)
		}
		if status, _ := post(t, e.hook.URL, "Bearer "+token, bytes.Repeat([]byte(" "), MaxBody+1)); status != http.StatusRequestEntityTooLarge {
			t.Errorf("a body over %d bytes = %d, want 413", MaxBody, status)
		}
		if status, _ := post(t, e.hook.URL, "Bearer "+token, []byte("not json")); status != http.StatusBadRequest {
			t.Errorf("a body that is not JSON = %d, want 400", status)
		}
	})
}

// TestInt_Unreachable: a store or a sink that does not answer is a 503,
// which MinIO delivers again.
func TestInt_Unreachable(t *testing.T) {
	testsupport.Integration(t)
	gone := "http://" + testsupport.FreeAddr(t)
	store, err := objstore.NewMinIO(gone, objstore.Credentials{AccessKey: "a", SecretKey: "b"}, false)
	if err != nil {
		t.Fatal(err)
	}
	sink := testsupport.NewSink(t, nil)
	s, err := sender.New(sink.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := New(WithStore(store), WithSender(s), WithToken(token), WithTimeout(2*time.Second), WithLogger(testLogger(t)))
	if err := f.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	h, err := fn.Handler(f)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	status, a := post(t, srv.URL, "Bearer "+token, notify("s3:ObjectCreated:Put", "bkt", "pets/dataset.yaml"))
	if status != http.StatusServiceUnavailable || a.Error == "" {
		t.Errorf("store down: POST = %d %+v, want 503 with the error", status, a)
	}

	// A store that answers, a sink that does not.
	e := setup(t, "sinkdown")
	deadSink, err := sender.New(gone, sender.WithPolicy(sender.Policy{Attempts: 2, Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond, Elapsed: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	f = e.newFunction(t, WithSender(deadSink))
	e.hook.serve(t, f)
	e.put(t, "sinkdown", "pets/train/cat/1.png", []byte("png"))
	e.put(t, "sinkdown", "pets/dataset.yaml", spec("pets", ""))
	testsupport.Eventually(t, 20*time.Second, "a 503 to MinIO", func() bool {
		e.hook.mu.Lock()
		defer e.hook.mu.Unlock()
		for _, s := range e.hook.handled["sinkdown/pets/dataset.yaml"] {
			if s == http.StatusServiceUnavailable {
				return true
			}
		}
		return false
	})
	// The sink is back: MinIO delivers the notification again, and it
	// becomes the event.
	e.hook.serve(t, e.newFunction(t))
	testsupport.Eventually(t, 60*time.Second, "the redelivered notification's dataset.uploaded", func() bool {
		got, _ := e.uploaded(t, "sinkdown")
		return len(got) == 1
	})
}
