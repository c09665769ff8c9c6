package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/gateway"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/functions/gateway/client"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

const token = "client-test-token-0123456789"

type env struct {
	url    string
	minio  *testsupport.MinIO
	sink   *testsupport.Sink
	ledger *ledger.Ledger
	c      *client.Client
}

func start(t *testing.T) *env {
	t.Helper()
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	m.Bucket(t, "platform")
	sink := testsupport.NewSink(t, events.Validate)
	s, err := sender.New(sink.URL)
	if err != nil {
		t.Fatal(err)
	}
	lim := gateway.DefaultLimits
	lim.PartSize = 5 << 20
	store := objstore.FromMinIO(m.Client)
	f := gateway.New(gateway.WithStore(store), gateway.WithSender(s), gateway.WithLogger(zerolog.Nop()), gateway.WithLimits(lim),
		gateway.WithTokens(gateway.Token{Name: "cli", Scope: gateway.ScopeWrite, Token: token}))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := f.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(f.Handle))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, token, client.WithReconnectDelay(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return &env{url: srv.URL, minio: m, sink: sink, ledger: ledger.New(store, "platform"), c: c}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, url string, b []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s = %s", url, resp.Status)
	}
}

// TestInt_UploadResumes: an upload cut short (a small file and the first
// part of a large one sent) is resumed by Upload, which sends only the
// rest; the store then holds every file and a dataset.yaml declaring them.
func TestInt_UploadResumes(t *testing.T) {
	testsupport.Integration(t)
	e := start(t)
	ctx := context.Background()
	dir := t.TempDir()
	files := map[string][]byte{
		"train/cat/0.png": random(t, 3000), "train/dog/0.png": random(t, 2000),
		"val/cat/0.png": random(t, 1000), "big.bin": random(t, 11<<20+123),
	}
	for p, b := range files {
		write(t, filepath.Join(dir, filepath.FromSlash(p)), b)
	}
	write(t, filepath.Join(dir, "dataset.yaml"), []byte("name: ignored\n"))
	req := api.UploadRequest{Name: "pets", Task: "classification", Format: "imagefolder"}

	// The first try, cut short: one small file and part 1 of big.bin.
	fl, err := client.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fl) != 4 {
		t.Fatalf("Files(dir) = %v, want the 4 data files (dataset.yaml left out)", fl)
	}
	first := req
	first.Files = fl
	up := uploadPlan(t, e, first)
	var big api.UploadTarget
	for _, f := range up.Files {
		switch f.Path {
		case "train/cat/0.png":
			put(t, f.URL, files[f.Path])
		case "big.bin":
			big = f
		}
	}
	if len(big.Parts) != 3 || big.UploadID == "" {
		t.Fatalf("big.bin (11 MiB, parts of 5 MiB) = %+v, want 3 parts of a multipart upload", big)
	}
	put(t, big.Parts[0].URL, files["big.bin"][:5<<20])

	// The second try sends the rest only.
	var last client.UploadProgress
	var mu sync.Mutex
	done, err := e.c.Upload(ctx, dir, req, client.UploadOptions{Progress: func(p client.UploadProgress) {
		mu.Lock()
		last = p
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(3000 + 5<<20); last.Skipped != want || last.BytesDone != last.Bytes || last.FilesDone != 4 {
		t.Errorf("resumed upload progress = %+v, want %d bytes skipped, everything done", last, want)
	}
	for p, b := range files {
		obj, err := e.minio.Client.GetObject(ctx, "datasets", done.Prefix+p, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s in the store: %d bytes, %v; want the file's %d", p, len(got), err, len(b))
		}
	}
	obj, err := e.minio.Client.GetObject(ctx, "datasets", "pets/dataset.yaml", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	y, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := dataset.ParseSpec("dataset.yaml", y)
	if err != nil || spec.Name != "pets" || spec.Files != 4 || spec.Bytes != int64(6000+11<<20+123) {
		t.Errorf("dataset.yaml = %+v, %v\n%s", spec, err, y)
	}
	// Once there, the dataset is not taken again under the same name.
	_, err = e.c.Upload(ctx, dir, req, client.UploadOptions{})
	var ge *client.Error
	if !errors.As(err, &ge) || ge.Status != http.StatusConflict || ge.Body.Field != "name" {
		t.Errorf("uploading pets again = %v, want 409 naming name", err)
	}
	// Another version is.
	v2 := req
	v2.Version = "v2"
	if up, err := e.c.Upload(ctx, dir, v2, client.UploadOptions{}); err != nil || up.Prefix != "pets/v2/" {
		t.Errorf("pets v2 = %+v, %v", up.Prefix, err)
	}
}

func uploadPlan(t *testing.T, e *env, req api.UploadRequest) api.Upload {
	t.Helper()
	up, err := e.c.Plan(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

// TestInt_UploadRefusals: the gateway names what is wrong with an upload.
func TestInt_UploadRefusals(t *testing.T) {
	testsupport.Integration(t)
	e := start(t)
	cases := []struct {
		desc  string
		req   api.UploadRequest
		field string
	}{
		{"bad name", api.UploadRequest{Name: "Pets!", Task: "classification", Format: "imagefolder", Files: []api.UploadFile{{Path: "a.png", Size: 1}}}, "name"},
		{"format of another task", api.UploadRequest{Name: "p", Task: "classification", Format: "yolo", Files: []api.UploadFile{{Path: "a.png", Size: 1}}}, "format"},
		{"no files", api.UploadRequest{Name: "p", Task: "classification", Format: "imagefolder"}, "files"},
		{"climbing path", api.UploadRequest{Name: "p", Task: "classification", Format: "imagefolder", Files: []api.UploadFile{{Path: "../x.png", Size: 1}}}, "files[0].path"},
		{"reserved name", api.UploadRequest{Name: "p", Task: "classification", Format: "imagefolder", Files: []api.UploadFile{{Path: "dataset.yaml", Size: 1}}}, "files[0].path"},
		{"twice", api.UploadRequest{Name: "p", Task: "classification", Format: "imagefolder", Files: []api.UploadFile{{Path: "a", Size: 1}, {Path: "a", Size: 1}}}, "files[1].path"},
		{"unknown train model", api.UploadRequest{Name: "p", Task: "classification", Format: "imagefolder", Files: []api.UploadFile{{Path: "a", Size: 1}}, Train: &api.Train{Model: "timm/nope"}}, "train.model"},
	}
	for _, c := range cases {
		_, err := e.c.Plan(context.Background(), c.req)
		var ge *client.Error
		if !errors.As(err, &ge) || ge.Status != http.StatusUnprocessableEntity || !slices.ContainsFunc(ge.Body.Fields, func(f events.FieldError) bool { return f.Field == c.field }) {
			t.Errorf("%s: %v, want 422 naming %s", c.desc, err, c.field)
		}
	}
	// Files in the store that the upload does not list.
	if _, err := e.minio.Client.PutObject(context.Background(), "datasets", "q/stray.png", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.Plan(context.Background(), api.UploadRequest{Name: "q", Task: "classification", Format: "imagefolder", Files: []api.UploadFile{{Path: "a.png", Size: 1}}})
	var ge *client.Error
	if !errors.As(err, &ge) || ge.Status != http.StatusConflict || !strings.Contains(ge.Body.Message, "stray.png") {
		t.Errorf("a stray file under the prefix: %v, want 409 naming it", err)
	}
}

// TestInt_FollowAndDownload: Follow gets a job's events from the ledger,
// then live, across a dropped stream, until it ends; Download checks the
// artifact's sha256.
func TestInt_FollowAndDownload(t *testing.T) {
	testsupport.Integration(t)
	e := start(t)
	ctx := context.Background()
	ref := events.DatasetRef{Bucket: "datasets", Prefix: "cats/", Digest: "sha256:" + strings.Repeat("a", 64), Task: "classification", Format: "imagefolder"}
	j := events.JobRequestedData{Dataset: ref, Model: events.ModelRef{Framework: "torchvision", Name: "resnet18"},
		Hyperparameters: events.Hyperparameters{Epochs: 2, BatchSize: 8, LearningRate: 0.01}}
	j.ID = events.JobID(ref.Digest, j.Model, j.Hyperparameters)
	mk := func(p events.Payload) event.Event {
		ev, err := events.New(ctx, "/test", p)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	if err := e.ledger.Record(ctx, mk(j)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	errc := make(chan error, 1)
	go func() {
		errc <- e.c.Follow(ctx, j.ID, "", func(ev client.Event) error {
			mu.Lock()
			got = append(got, ev.Type)
			mu.Unlock()
			return nil
		})
	}()
	seen := func(n int) bool { mu.Lock(); defer mu.Unlock(); return len(got) >= n }
	testsupport.Eventually(t, 10*time.Second, "the job.requested from the ledger", func() bool { return seen(1) })
	content := []byte("the weights")
	sum := sha256.Sum256(content)
	if _, err := e.minio.Client.PutObject(ctx, "platform", "runs/r/weights.pt", bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	fin := events.RunFinishedData{Job: j.ID, RunID: "r", Status: events.StatusSucceeded, DurationSeconds: 1,
		Artifacts: []events.Artifact{{Name: "weights.pt", URI: "s3://platform/runs/r/weights.pt", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}}}
	for _, p := range []events.Payload{
		events.RunProgressData{Job: j.ID, RunID: "r", Epoch: 1, Step: 1, Metrics: map[string]float64{"loss": 1}, Time: time.Now()},
		fin,
	} {
		ev := mk(p)
		status, _, body := testsupport.Deliver(t, e.url+"/", ev)
		if status != http.StatusAccepted {
			t.Fatalf("delivering %s = %d %s", ev.Type(), status, body)
		}
		if err := e.ledger.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not end after run.finished")
	}
	if want := []string{"job.requested", "run.progress", "run.finished"}; !slices.Equal(got, want) {
		t.Errorf("followed %v, want %v", got, want)
	}
	time.Sleep(1100 * time.Millisecond) // past the gateway's status cache
	arts, err := e.c.Artifacts(ctx, j.ID)
	if err != nil || len(arts.Artifacts) != 1 {
		t.Fatalf("artifacts = %+v, %v", arts, err)
	}
	dir := t.TempDir()
	p, err := e.c.Download(ctx, arts.Artifacts[0], dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, content) {
		t.Errorf("downloaded %q, %v", b, err)
	}
	bad := arts.Artifacts[0]
	bad.Name, bad.SHA256 = "other.pt", strings.Repeat("0", 64)
	if _, err := e.c.Download(ctx, bad, dir); !errors.Is(err, client.ErrChecksum) {
		t.Errorf("a download with the wrong sha256 = %v, want ErrChecksum", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.pt")); !os.IsNotExist(err) {
		t.Errorf("a download that failed its check left a file: %v", err)
	}
	// Unknown jobs are not followed for ever.
	if err := e.c.Follow(ctx, "job-00000000000000000000", "", func(client.Event) error { return nil }); err == nil {
		t.Error("following an unknown job = nil error")
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := client.New("127.0.0.1:8088", token); !errors.Is(err, client.ErrGatewayURL) {
		t.Errorf("New without a scheme = %v", err)
	}
	if _, err := client.New("http://127.0.0.1:8088", ""); !errors.Is(err, client.ErrNoToken) {
		t.Errorf("New without a token = %v", err)
	}
}
