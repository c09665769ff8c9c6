// Package executor launches training runs: as a process on this host, as a
// Docker container, or (later) as a Kubernetes Job. Each run is the run
// agent reading its run.started event; the agent reports by event, so
// Launch returns as soon as the run is queued or started.
package executor

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
)

// Names of the executors, as run.started reports them.
const (
	Process    = "process"
	Docker     = "docker"
	Kubernetes = "kubernetes"
)

var (
	// ErrUnknownRun is returned when cancelling a run the executor does
	// not know.
	ErrUnknownRun = errors.New("unknown run")
	// ErrNoGPUs is returned for a run that asks for more GPUs than the
	// host has.
	ErrNoGPUs = errors.New("not enough GPUs")
)

// Run is one run to launch.
type Run struct {
	ID    string      // run id; a second Launch of the same id does nothing
	Event event.Event // the run.started event the agent reads
	Image string      // framework image (docker, kubernetes)
	GPUs  int
	// CPU and Memory limits (Kubernetes quantities: "4", "16Gi").
	CPU, Memory string
	// Env reaches the agent: VP_S3_*, K_SINK, ...
	Env []string
}

// Executor launches and cancels runs.
type Executor interface {
	Name() string
	// Launch starts or queues r and returns; the run reports by events.
	Launch(ctx context.Context, r Run) error
	// Cancel stops a queued or running run (SIGTERM, then a grace period).
	Cancel(ctx context.Context, runID string) error
}

// Waiter is implemented by executors that can wait for a run to end,
// returning the agent's exit code.
type Waiter interface {
	Wait(ctx context.Context, runID string) (int, error)
}

// Check makes sure r carries a valid run.started event for its own id.
func (r Run) Check() error {
	var d events.RunStartedData
	if r.Event.Context == nil {
		return fmt.Errorf("run %s: no run.started event", r.ID)
	}
	if err := events.DecodeInto(r.Event, &d); err != nil {
		return fmt.Errorf("run %s: %w", r.ID, err)
	}
	if d.RunID != r.ID {
		return fmt.Errorf("run %s: its event is for run %s", r.ID, d.RunID)
	}
	return nil
}
