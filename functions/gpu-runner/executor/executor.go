package executor

import (
	"context"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
)

// Names of the executors, as run.started reports them: the names in
// events.Executors, whose list the run.started schema's enum is generated
// from (a test keeps the three equal).
const (
	Process    = "process"
	Docker     = "docker"
	Kubernetes = "kubernetes"
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

// Check makes sure r carries a valid run.started event for its own id; an
// error wraps ErrInvalidRun.
func (r Run) Check() error {
	_, err := r.started()
	return err
}

// started decodes r's run.started event and checks it is for r.
func (r Run) started() (events.RunStartedData, error) {
	var d events.RunStartedData
	if r.Event.Context == nil {
		return d, fmt.Errorf("%w: run %s: no run.started event", ErrInvalidRun, r.ID)
	}
	if err := events.DecodeInto(r.Event, &d); err != nil {
		return d, fmt.Errorf("%w: run %s: %w", ErrInvalidRun, r.ID, err)
	}
	if d.RunID != r.ID {
		return d, fmt.Errorf("%w: run %s: its event is for run %s", ErrInvalidRun, r.ID, d.RunID)
	}
	return d, nil
}
