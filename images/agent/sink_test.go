package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
)

func sinkEvent(t *testing.T) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), "/test", events.ImageFailedData{Job: "job-0123456789abcdef0123", Framework: "timm", Reason: "x", Message: "y"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSinkRetriesConflict: the agent's sink follows the one sender's policy,
// so a 409 (which the agent's own loop used to take as final) is retried.
func TestSinkRetriesConflict(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	s := &Sink{URL: srv.URL, Opts: []sender.Option{sender.WithPolicy(sender.Policy{Initial: time.Millisecond, Max: time.Millisecond})}}
	if err := s.Send(context.Background(), sinkEvent(t)); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("Send() made %d requests, want 2", got)
	}
}

func TestSinkRefusal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	var se *sender.Error
	if err := (&Sink{URL: srv.URL}).Send(context.Background(), sinkEvent(t)); !errors.As(err, &se) || se.Status != 400 {
		t.Errorf("Send() = %v, want a *sender.Error with 400", err)
	}
}

// TestSinkLines: with no URL, events are JSON lines on Out.
func TestSinkLines(t *testing.T) {
	var buf bytes.Buffer
	s := &Sink{Out: &buf}
	e := sinkEvent(t)
	for range 2 {
		if err := s.Send(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	var got event.Event
	if err := json.Unmarshal(lines[0], &got); err != nil || got.ID() != e.ID() {
		t.Errorf("line 1 = %s (%v), want the event %s", lines[0], err, e.ID())
	}
}
