package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/testsupport"
)

// TestFlagError: the library's field error comes back naming the flag.
func TestFlagError(t *testing.T) {
	_, err := Logger(nil, "xml")
	if got, want := flagError(err).Error(), `--log-format "xml": not json or console`; got != want {
		t.Errorf("flagError(Logger(xml)) = %q, want %q", got, want)
	}
	other := errors.New("something else")
	if got := flagError(other); got != other {
		t.Errorf("flagError(%v) = %v, want it unchanged", other, got)
	}
}

// validRequest is a run.started event of a run whose dataset is in bucket
// "datasets" (which no store of these tests has).
func validRequest(t *testing.T) event.Event {
	t.Helper()
	digest := "sha256:" + strings.Repeat("d", 64)
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 1, LearningRate: 0.1}
	mref := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	ev, err := events.New(context.Background(), "/test", events.RunStartedData{
		Job: events.JobRequestedData{ID: events.JobID(digest, mref, hp), Dataset: events.DatasetRef{Bucket: "datasets", Prefix: "x/", Digest: digest,
			Task: events.TaskClassification, Format: events.FormatImageFolder}, Model: mref, Hyperparameters: hp},
		RunID: "run-main", Image: "local", Executor: "process", Output: "s3://runs/run-main/",
	})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMainBadRequests: whatever stops the agent before a run begins is
// exit code 2, said on stderr.
func TestMainBadRequests(t *testing.T) {
	t.Setenv("VP_RUN_EVENT", "")
	t.Setenv("K_SINK", "")
	notARun, err := events.New(context.Background(), "/test", events.JobCancelledData{Job: "job-" + strings.Repeat("a", 20)})
	if err != nil {
		t.Fatal(err)
	}
	notJSON := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(notJSON, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		desc     string
		endpoint string
		args     []string
		want     int
		stderr   string
	}{
		{"help", "", []string{"-h"}, ExitSucceeded, "-workdir"},
		{"unknown flag", "", []string{"--nope"}, ExitBadRequest, "flag provided but not defined: -nope"},
		{"bad log format", "", []string{"--log-format", "xml"}, ExitBadRequest, `--log-format "xml": not json or console`},
		{"no event file", "", []string{"--event", filepath.Join(t.TempDir(), "missing.json")}, ExitBadRequest, "loading the run request"},
		{"not a CloudEvent", "", []string{"--event", notJSON}, ExitBadRequest, "not a structured CloudEvent"},
		{"no store", "", []string{"--event", writeJSON(t, validRequest(t))}, ExitBadRequest, "VP_S3_ENDPOINT"},
		{"not a run", "127.0.0.1:1", []string{"--event", writeJSON(t, notARun)}, ExitBadRequest, "bad run request"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			t.Setenv("VP_S3_ENDPOINT", c.endpoint)
			var stdout, stderr bytes.Buffer
			args := append(c.args, "--workdir", t.TempDir())
			if got := Main(context.Background(), args, strings.NewReader(""), &stdout, &stderr); got != c.want {
				t.Errorf("Main(%q) = %d, want %d; stderr:\n%s", args, got, c.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.stderr) {
				t.Errorf("Main(%q) stderr = %q, want it to say %q", args, stderr.String(), c.stderr)
			}
		})
	}
}

// TestInt_MainFailedRunPrintsEvents: a run that fails is exit code 1, and
// without K_SINK its events go to stdout, the request read from stdin.
func TestInt_MainFailedRunPrintsEvents(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t) // no "datasets" bucket: the download fails at once
	t.Setenv("VP_RUN_EVENT", "")
	t.Setenv("K_SINK", "")
	t.Setenv("VP_S3_ENDPOINT", m.Endpoint)
	t.Setenv("VP_S3_ACCESS_KEY", testsupport.MinIOUser)
	t.Setenv("VP_S3_SECRET_KEY", testsupport.MinIOPassword)
	b, err := json.Marshal(validRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--event", "-", "--workdir", t.TempDir(), "--log-format", "console"}, bytes.NewReader(b), &stdout, &stderr)
	if code != ExitFailed {
		t.Fatalf("Main = %d, want %d; stderr:\n%s", code, ExitFailed, stderr.String())
	}
	var fin event.Event
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &fin); err != nil {
		t.Fatalf("stdout's last line is not an event: %v\n%s", err, stdout.String())
	}
	var d events.RunFinishedData
	if err := events.DecodeInto(fin, &d); err != nil {
		t.Fatal(err)
	}
	if d.RunID != "run-main" || d.Status != events.StatusFailed {
		t.Errorf("stdout's run.finished = run %s %s, want run-main failed", d.RunID, d.Status)
	}
}
