package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
)

func TestLoadRequestSources(t *testing.T) {
	e, err := events.New(context.Background(), "/test", events.ImageFailedData{Job: "job-0123456789abcdef0123", Framework: "timm", Reason: "x", Message: "y"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "event")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadRequest(file, nil)
	if err != nil || got.ID() != e.ID() {
		t.Errorf("from a file: %v, %v", got.ID(), err)
	}
	got, err = LoadRequest("-", strings.NewReader(string(b)))
	if err != nil || got.ID() != e.ID() {
		t.Errorf("from stdin: %v, %v", got.ID(), err)
	}
	t.Setenv("VP_RUN_EVENT", string(b))
	got, err = LoadRequest("/nonexistent", nil)
	if err != nil || got.ID() != e.ID() {
		t.Errorf("from VP_RUN_EVENT: %v, %v", got.ID(), err)
	}
	t.Setenv("VP_RUN_EVENT", "")
	if _, err := LoadRequest(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("a missing file loaded")
	}
	if _, err := LoadRequest("-", strings.NewReader("not json")); err == nil {
		t.Error("garbage loaded")
	}
	// A request that is not a run.started names no run: Run refuses it.
	if _, err := Run(context.Background(), Config{Sink: &Sink{Out: os.Stderr}, Log: zerolog.Nop()}, e); err == nil {
		t.Error("Run accepted an image.failed event")
	}
}
