package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
)

// Reasons of the run.finished the process executor sends itself, for a
// run whose agent never started.
const (
	// ReasonCancelledQueued: the run was cancelled before it started.
	ReasonCancelledQueued = "cancelled while queued: the run never started"
	// ReasonNotStarted begins the reason of a run whose agent could not be
	// started; the error follows.
	ReasonNotStarted = "the run agent could not be started"
)

// Cancelled is the run.finished (cancelled) of r, a run cancelled before
// its agent started: it answers r's run.started within its trace and has
// the deterministic id of r's ending, so it is the one ending of the run.
func Cancelled(r Run, source string) (event.Event, error) {
	return Ending(r, source, events.StatusCancelled, ReasonCancelledQueued)
}

// Ending is the run.finished of r with status and reason, for a run whose
// agent never started to send it: it answers r's run.started within its
// trace and has the deterministic id of r's ending, so it is the one
// ending of the run.
func Ending(r Run, source, status, reason string) (event.Event, error) {
	d, err := r.started()
	if err != nil {
		return event.Event{}, err
	}
	fin := events.RunFinishedData{Job: d.Job.ID, RunID: r.ID, Status: status, Reason: reason}
	e, err := events.Next(r.Event, source, fin)
	if err != nil {
		return event.Event{}, fmt.Errorf("making run.finished of run %s: %w", r.ID, err)
	}
	return e, nil
}

// sendEnding sends r's run.finished with status and reason through the
// executor's Sender, or where r's agent would have sent it: the K_SINK of
// its environment, with the platform's retry policy. Without either the
// event is logged, as the agent prints it.
func (p *ProcessExecutor) sendEnding(ctx context.Context, r Run, status, reason string) error {
	return sendEnding(ctx, endingSink{p.Sender, p.Source, p.Env, p.Log}, r, status, reason)
}

// endingSink is where an executor sends the endings it sends itself.
type endingSink struct {
	sender sender.Interface
	source string
	env    []string
	log    zerolog.Logger
}

func sendEnding(ctx context.Context, to endingSink, r Run, status, reason string) error {
	source := to.source
	if source == "" {
		source = DefaultSource
	}
	e, err := Ending(r, source, status, reason)
	if err != nil {
		return err
	}
	s := to.sender
	if s == nil {
		sink := lookupEnv("K_SINK", os.Environ(), to.env, r.Env)
		if sink == "" {
			b, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("encoding run.finished: %w", err)
			}
			to.log.Warn().Str("run", r.ID).RawJSON("event", b).Msg("no K_SINK: run.finished not sent")
			return nil
		}
		if s, err = sender.New(sink); err != nil {
			return fmt.Errorf("run %s: %w", r.ID, err)
		}
	}
	if err := s.Send(ctx, e); err != nil {
		return fmt.Errorf("sending run.finished: %w", err)
	}
	return nil
}

// lookupEnv is key's value in the environment a process gets from envs
// appended in order: the last assignment wins, as os/exec has it.
func lookupEnv(key string, envs ...[]string) string {
	for i := len(envs) - 1; i >= 0; i-- {
		for j := len(envs[i]) - 1; j >= 0; j-- {
			if v, ok := strings.CutPrefix(envs[i][j], key+"="); ok {
				return v
			}
		}
	}
	return ""
}
