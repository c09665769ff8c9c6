package up

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/emit"

	"github.com/vision-platform/vp/internal/testsupport"
)

// TestInt_Up runs the local platform and sends it a platform event: the
// event display shows it, and an invalid payload is refused at the door.
func TestInt_Up(t *testing.T) {
	testsupport.Integration(t)
	var logs testsupport.SyncBuffer
	log := zerolog.New(&logs)
	c := testConfig(t, t.TempDir())
	c.Out = &testsupport.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, log) }()
	testsupport.WaitHTTP(t, "http://"+c.BrokerAddr+"/readyz", 60*time.Second)
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
	if err := bad.SetData(events.ContentType, map[string]any{"bucket": "datasets"}); err != nil {
		t.Fatal(err)
	}
	var he *emit.HTTPError
	if err := emit.Send(ctx, ingress, bad, false); !errors.As(err, &he) || he.Status != 400 || !strings.Contains(he.Body, "data.digest") {
		t.Errorf("sending an invalid dataset.uploaded: %v; want 400 naming data.digest", err)
	}
	// The display logs the event and lists it (with what the functions
	// answered to it: job-trigger rejects this dataset, which has no
	// content manifest in MinIO).
	var shown []event.Event
	testsupport.Eventually(t, 20*time.Second, "the event display to list "+e.ID(), func() bool {
		resp, err := http.Get("http://" + c.DisplayAddr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		shown = nil
		if err := json.NewDecoder(resp.Body).Decode(&shown); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET display: %d %v", resp.StatusCode, err)
		}
		for _, s := range shown {
			if s.ID() == e.ID() {
				return true
			}
		}
		return false
	})
	for _, s := range shown {
		if s.ID() == e.ID() && (s.Type() != e.Type() || string(s.Data()) != string(e.Data())) {
			t.Errorf("GET display lists %s as %s %s, want %s %s", e.ID(), s.Type(), s.Data(), e.Type(), e.Data())
		}
		if s.ID() == "bad-1" {
			t.Errorf("GET display lists the refused event")
		}
	}
	if !strings.Contains(logs.String(), `"component":"event-display","id":"`+e.ID()+`"`) && !strings.Contains(logs.String(), `"id":"`+e.ID()+`","type"`) {
		t.Errorf("the event display did not log %s", e.ID())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v", err)
	}
}

func TestEventDisplay(t *testing.T) {
	var logs testsupport.SyncBuffer
	h := EventDisplay(zerolog.New(&logs))
	post := func(id string) int {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"n":1}`))
		r.Header.Set("Ce-Specversion", "1.0")
		r.Header.Set("Ce-Id", id)
		r.Header.Set("Ce-Source", "/t")
		r.Header.Set("Ce-Type", "t")
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for i := 0; i < displayKeep+5; i++ {
		if code := post(fmt.Sprint("e", i)); code != http.StatusAccepted {
			t.Fatalf("POST event %d: %d", i, code)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	var shown []event.Event
	if err := json.Unmarshal(w.Body.Bytes(), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown) != displayKeep || shown[0].ID() != "e5" || shown[len(shown)-1].ID() != fmt.Sprint("e", displayKeep+4) {
		t.Errorf("GET lists %d events from %s to %s; want the latest %d, e5 to e%d", len(shown), shown[0].ID(), shown[len(shown)-1].ID(), displayKeep, displayKeep+4)
	}
	if !strings.Contains(logs.String(), `"id":"e0"`) {
		t.Errorf("the display did not log the first event")
	}
	// Not an event: 400 naming the body; another method: 405.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("hello")))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"field":"body"`) {
		t.Errorf("POST not an event: %d %s", w.Code, w.Body.String())
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodDelete, "/", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, POST" {
		t.Errorf("DELETE: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}
