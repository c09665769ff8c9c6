package up

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/emit"

	"github.com/vision-platform/vp/internal/testsupport"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInt_Up runs the local platform and sends it a platform event: the
// event display shows it, and an invalid payload is refused at the door.
func TestInt_Up(t *testing.T) {
	var logs syncBuffer
	log := zerolog.New(&logs)
	c := Config{DataDir: t.TempDir(), BrokerAddr: testsupport.FreeAddr(t), DisplayAddr: testsupport.FreeAddr(t), RegistryAddr: testsupport.FreeAddr(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, log) }()
	testsupport.WaitHTTP(t, "http://"+c.BrokerAddr+"/readyz", 20*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	if resp, err := http.Get("http://" + c.RegistryAddr + "/v2/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("registry /v2/: %v", err)
	}
	ingress := "http://" + c.BrokerAddr + "/default/default"
	e, err := events.New(ctx, "/test", events.DatasetUploadedData{
		DatasetRef: events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: "sha256:" + strings.Repeat("b", 64), Task: events.TaskClassification, Format: events.FormatImageFolder},
		Name:       "cats", Manifest: "cats/v1/dataset.yaml", Files: 3, Bytes: 300,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := emit.Send(ctx, ingress, e, false); err != nil {
		t.Fatalf("sending a valid event: %v", err)
	}
	bad := e.Clone()
	bad.SetID("bad-1")
	_ = bad.SetData(events.ContentType, map[string]any{"bucket": "datasets"})
	var he *emit.HTTPError
	if err := emit.Send(ctx, ingress, bad, false); !errors.As(err, &he) || he.Status != 400 || !strings.Contains(he.Body, "data.digest") {
		t.Errorf("sending an invalid dataset.uploaded: %v; want 400 naming data.digest", err)
	}
	for !strings.Contains(logs.String(), `"id":"`+e.ID()+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("event display did not show %s; logs:\n%s", e.ID(), logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v", err)
	}
}
