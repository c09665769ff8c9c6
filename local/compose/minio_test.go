package compose

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/vision-platform/vp/internal/testsupport"
	localminio "github.com/vision-platform/vp/local/minio"
)

// TestInt_SetupMinIO: against a real MinIO, SetupMinIO makes the buckets
// (twice is the same), points the datasets bucket at its webhook targets,
// and leaves out a target MinIO does not have (as it leaves out one without
// a queue whose endpoint did not answer at its start), saying so.
func TestInt_SetupMinIO(t *testing.T) {
	testsupport.Integration(t)
	var got atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer tok" {
			got.Add(1)
		}
	}))
	defer hook.Close()
	m := testsupport.StartMinIO(t,
		localminio.Webhook{ID: "vp", Endpoint: hook.URL, Token: "tok", QueueDir: filepath.Join(t.TempDir(), "queue")},
		localminio.Webhook{ID: "vpfast", Endpoint: "http://" + testsupport.FreeAddr(t) + "/", Token: "tok"})
	buckets := []Bucket{{Name: "datasets", Notify: []string{"vp", "vpfast", "nosuch"}}, {Name: "runs"}, {Name: "platform"}}
	ctx := context.Background()
	dropped, err := SetupMinIO(ctx, m.Client, buckets, SetupOptions{TargetGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dropped, "nosuch") || slices.Contains(dropped, "vp") {
		t.Errorf("SetupMinIO left out %v, want nosuch (MinIO has no such target) and not vp", dropped)
	}
	if _, err := SetupMinIO(ctx, m.Client, []Bucket{{Name: "datasets", Notify: []string{"vp"}}, {Name: "runs"}}, SetupOptions{}); err != nil {
		t.Errorf("SetupMinIO a second time: %v", err)
	}
	for _, b := range []string{"datasets", "runs", "platform"} {
		if ok, err := m.Client.BucketExists(ctx, b); err != nil || !ok {
			t.Errorf("bucket %s: exists %v, %v", b, ok, err)
		}
	}
	if _, err := m.Client.PutObject(ctx, "datasets", "cats/dataset.yaml", strings.NewReader("x"), 1, miniogo.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 15*time.Second, "the webhook to be told of the new object", func() bool { return got.Load() > 0 })
}

// TestProbe: 200 is healthy, anything else or no answer is not.
func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := Probe(ctx, srv.URL+"/ok"); err != nil {
		t.Errorf("Probe(200) = %v", err)
	}
	if err := Probe(ctx, srv.URL+"/down"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Probe(503) = %v, want an error naming 503", err)
	}
	if err := Probe(ctx, "http://"+testsupport.FreeAddr(t)+"/"); err == nil {
		t.Error("Probe(nothing listening) = nil")
	}
}
