package minio_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/vision-platform/vp/internal/testsupport"
	. "github.com/vision-platform/vp/local/minio"
)

func TestInt_StartWebhookStop(t *testing.T) {
	testsupport.Integration(t)
	var mu sync.Mutex
	var keys []string
	var auth []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Records []struct {
				S3 struct {
					Object struct {
						Key string `json:"key"`
					} `json:"object"`
				} `json:"s3"`
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		for _, rec := range body.Records {
			keys = append(keys, rec.S3.Object.Key)
		}
		mu.Unlock()
	}))
	defer hook.Close()
	ctx := context.Background()
	s, err := Start(ctx, Config{
		Binary: testsupport.MinIOBinary(t), DataDir: t.TempDir(),
		Addr: testsupport.FreeAddr(t), ConsoleAddr: testsupport.FreeAddr(t),
		User: "vp-test", Password: "vp-secret-1",
		Webhooks: []Webhook{{ID: "vp", Endpoint: hook.URL, Token: "tok", QueueDir: t.TempDir()}},
		Buckets:  []Bucket{{Name: "datasets", Notify: []string{"vp"}}, {Name: "runs"}},
	})
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	for _, b := range []string{"datasets", "runs"} {
		if ok, err := s.Client.BucketExists(ctx, b); err != nil || !ok {
			t.Errorf("BucketExists(%s) = %v, %v", b, ok, err)
		}
	}
	if _, err := s.Client.PutObject(ctx, "datasets", "cats/a b.png", strings.NewReader("x"), 1, miniogo.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.PutObject(ctx, "runs", "r/x", strings.NewReader("x"), 1, miniogo.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 10*time.Second, "the webhook to get the datasets object", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(keys) > 0
	})
	mu.Lock()
	if len(keys) != 1 || keys[0] != "cats%2Fa+b.png" || auth[0] != "Bearer tok" {
		t.Errorf("webhook got keys %q with Authorization %q; want one URL-escaped key of the notifying bucket, bearer token", keys, auth)
	}
	mu.Unlock()

	// A second server on the same addresses is refused with a message.
	_, err = Start(ctx, Config{Binary: testsupport.MinIOBinary(t), DataDir: t.TempDir(), Addr: s.Endpoint, ConsoleAddr: testsupport.FreeAddr(t), User: "vp-test", Password: "vp-secret-1"})
	if err == nil || !strings.Contains(err.Error(), "is not free") {
		t.Errorf("Start() on a used address = %v, want 'is not free'", err)
	}

	s.Stop()
	select {
	case <-s.Done():
	default:
		t.Fatal("Stop() returned before the process exited")
	}
	if c, err := net.DialTimeout("tcp", s.Endpoint, time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s after Stop", s.Endpoint)
	}
}

func TestStartRefusesWeakCredentials(t *testing.T) {
	_, err := Start(context.Background(), Config{Binary: "/bin/true", User: "vp-test", Password: "short"})
	if err == nil || !strings.Contains(err.Error(), "at least 8") {
		t.Errorf("Start() with a short password = %v", err)
	}
}
