package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/testsupport"
)

// TestAgentCommand: vp agent is the run agent, with its flags and exit
// codes: a request it cannot load is exit code 2, said on stderr.
func TestAgentCommand(t *testing.T) {
	t.Setenv("VP_RUN_EVENT", "")
	for _, c := range []struct {
		desc string
		args []string
		code int
		says string
	}{
		{"missing event file", []string{"agent", "--event", filepath.Join(t.TempDir(), "missing.json"), "--workdir", t.TempDir()}, 2, "loading the run request"},
		{"the agent's log format", []string{"agent", "--log-format", "xml"}, 2, `--log-format "xml": not json or console`},
		{"help", []string{"agent", "-h"}, 0, "-event"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			out, err := run(context.Background(), "", c.args...)
			if got := ExitCode(err); got != c.code {
				t.Errorf("vp %s: exit code %d (%v), want %d\n%s", strings.Join(c.args, " "), got, err, c.code, out)
			}
			if !strings.Contains(out, c.says) {
				t.Errorf("vp %s said %q, want %q in it", strings.Join(c.args, " "), out, c.says)
			}
			if strings.Contains(out, "Error:") || strings.Contains(out, "Usage:") {
				t.Errorf("vp %s printed cobra's error or usage as well:\n%s", strings.Join(c.args, " "), out)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("broken"), 1},
		{&ExitError{Code: 143}, 143},
		{fmt.Errorf("running: %w", &ExitError{Code: 2}), 2},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// TestInt_AgentCommandReports: vp agent reads its settings from the
// environment and reports to K_SINK: a run whose dataset is not there
// ends failed (exit code 1) with its one run.finished at the sink.
func TestInt_AgentCommandReports(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t) // no datasets bucket
	sink := testsupport.NewSink(t, events.Validate)
	for k, v := range map[string]string{"VP_RUN_EVENT": "", "K_SINK": sink.URL, "VP_S3_ENDPOINT": m.Endpoint,
		"VP_S3_ACCESS_KEY": testsupport.MinIOUser, "VP_S3_SECRET_KEY": testsupport.MinIOPassword} {
		t.Setenv(k, v)
	}
	digest := "sha256:" + strings.Repeat("d", 64)
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 1, LearningRate: 0.1}
	mref := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	ev, err := events.New(context.Background(), "/test", events.RunStartedData{
		Job: events.JobRequestedData{ID: events.JobID(digest, mref, hp), Dataset: events.DatasetRef{Bucket: "datasets", Prefix: "x/", Digest: digest,
			Task: events.TaskClassification, Format: events.FormatImageFolder}, Model: mref, Hyperparameters: hp},
		RunID: "run-cmd", Image: "local", Executor: "process", Output: "s3://runs/run-cmd/",
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(context.Background(), string(b), "agent", "--event", "-", "--workdir", t.TempDir(), "--log-format", "console")
	if code := ExitCode(err); code != 1 {
		t.Fatalf("vp agent = exit code %d (%v), want 1 (failed)\n%s", code, err, out)
	}
	got := sink.OfType(string(events.RunFinished))
	if len(got) != 1 {
		t.Fatalf("the sink got %d run.finished, want 1\n%s", len(got), out)
	}
	var fin events.RunFinishedData
	if err := events.DecodeInto(got[0], &fin); err != nil {
		t.Fatal(err)
	}
	if fin.RunID != "run-cmd" || fin.Status != events.StatusFailed {
		t.Errorf("run.finished = run %s %s, want run-cmd failed", fin.RunID, fin.Status)
	}
}
