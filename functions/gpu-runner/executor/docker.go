package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
)

// DockerExecutor runs the agent in the run's framework image on the local
// Docker Engine: the image's entrypoint is the agent, the run.started event
// goes in VP_RUN_EVENT, GPUs through --gpus, limits through --cpus and
// --memory. Containers are named after the run id, so a redelivered run
// starts nothing twice, and removed once waited for.
//
// GPUs are devices, not counts: a run asking for n GPUs gets n of Devices
// that no running container of another run holds (each run's container is
// labelled with its devices, so the engine is the record, across restarts
// of this executor too), as --gpus "device=0,1". A run that finds too few
// free waits in a queue, in order, and starts when a run ends; cancelling
// it there sends its run.finished (cancelled), since no agent will.
type DockerExecutor struct {
	Docker  string   // the docker command (default "docker")
	Network string   // --network (default "host": the agent reaches loopback MinIO and broker)
	Env     []string // added to every run
	Grace   time.Duration
	Log     zerolog.Logger
	// Devices are the host's GPU ids (from nvidia-smi: see NvidiaSMI).
	Devices []string
	// Source and Sender are where the run.finished of a run cancelled in
	// the queue goes (defaults as the process executor's).
	Source string
	Sender sender.Interface
	// Poll is how often queued runs look for free devices (default 1 s).
	Poll time.Duration

	mu     sync.Mutex
	queue  []Run
	ticker bool
}

var _ Executor = (*DockerExecutor)(nil)
var _ Waiter = (*DockerExecutor)(nil)

// Name is "docker".
func (d *DockerExecutor) Name() string { return Docker }

// RunLabel labels a run's container with the run id, GPULabel with the
// GPU devices it was given.
const (
	RunLabel = "dev.visionplatform.run"
	GPULabel = "dev.visionplatform.gpus"
)

// ContainerName is the container of a run.
func ContainerName(runID string) string { return "vp-run-" + runID }

// docker runs the docker command; a failure is a *CommandError.
func (d *DockerExecutor) docker(ctx context.Context, args ...string) (string, error) {
	bin := d.Docker
	if bin == "" {
		bin = "docker"
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		code := -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
		return string(out), &CommandError{Args: args, ExitCode: code, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return strings.TrimSpace(string(out)), nil
}

// exists reports whether the run's container exists (running or not),
// asking the engine for the containers labelled with the run id: an
// answer with none means no such run, a failed command an engine that
// could not say.
func (d *DockerExecutor) exists(ctx context.Context, runID string) (bool, error) {
	out, err := d.docker(ctx, "container", "ls", "--all", "--quiet", "--no-trunc", "--filter", "label="+RunLabel+"="+runID)
	if err != nil {
		return false, fmt.Errorf("looking for run %s: %w", runID, err)
	}
	return out != "", nil
}

// Available reports whether a Docker Engine answers.
func (d *DockerExecutor) Available(ctx context.Context) bool {
	_, err := d.docker(ctx, "version", "--format", "{{.Server.Version}}")
	return err == nil
}

// Launch starts the run's container (detached) unless it exists or is
// queued; a run asking for GPUs that are all taken is queued.
func (d *DockerExecutor) Launch(ctx context.Context, r Run) error {
	if err := r.Check(); err != nil {
		return err
	}
	if r.Image == "" {
		return fmt.Errorf("%w: run %s: no image", ErrInvalidRun, r.ID)
	}
	if r.GPUs > len(d.Devices) && r.GPUs > 0 {
		return fmt.Errorf("%w: run %s asks for %d, this host has %d", ErrNoGPUs, r.ID, r.GPUs, len(d.Devices))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, q := range d.queue {
		if q.ID == r.ID {
			return nil // redelivered: queued
		}
	}
	found, err := d.exists(ctx, r.ID)
	if err != nil {
		return err
	}
	if found {
		return nil // redelivered: the run exists
	}
	if len(d.queue) > 0 {
		d.enqueueLocked(r) // runs start in order
		return nil
	}
	started, err := d.startLocked(ctx, r)
	if err != nil {
		return err
	}
	if !started {
		d.enqueueLocked(r)
	}
	return nil
}

func (d *DockerExecutor) enqueueLocked(r Run) {
	d.queue = append(d.queue, r)
	d.Log.Info().Str("run", r.ID).Int("gpus", r.GPUs).Int("queued", len(d.queue)).Msg("run queued: waiting for free GPUs")
	if !d.ticker {
		d.ticker = true
		go d.schedule()
	}
}

// schedule starts queued runs, in order, as devices come free.
func (d *DockerExecutor) schedule() {
	poll := d.Poll
	if poll <= 0 {
		poll = time.Second
	}
	for {
		time.Sleep(poll)
		d.mu.Lock()
		for len(d.queue) > 0 {
			started, err := d.startLocked(context.Background(), d.queue[0])
			if err != nil {
				d.Log.Error().Err(err).Str("run", d.queue[0].ID).Msg("starting a queued run; trying again")
				break
			}
			if !started {
				break
			}
			d.queue = d.queue[1:]
		}
		if len(d.queue) == 0 {
			d.ticker = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
	}
}

// inUse are the devices the running (or created) containers of runs hold.
func (d *DockerExecutor) inUse(ctx context.Context) (map[string]bool, error) {
	out, err := d.docker(ctx, "container", "ls", "--filter", "label="+GPULabel, "--filter", "status=running", "--filter", "status=created",
		"--format", "{{.Label \""+GPULabel+"\"}}")
	if err != nil {
		return nil, fmt.Errorf("asking which GPUs are in use: %w", err)
	}
	used := map[string]bool{}
	for _, line := range strings.Fields(out) {
		for _, dev := range strings.Split(line, ",") {
			used[dev] = true
		}
	}
	return used, nil
}

// startLocked starts r's container with free devices, or reports that
// too few are free.
func (d *DockerExecutor) startLocked(ctx context.Context, r Run) (bool, error) {
	var devices []string
	if r.GPUs > 0 {
		used, err := d.inUse(ctx)
		if err != nil {
			return false, err
		}
		for _, dev := range d.Devices {
			if len(devices) < r.GPUs && !used[dev] {
				devices = append(devices, dev)
			}
		}
		if len(devices) < r.GPUs {
			return false, nil
		}
	}
	ev, err := json.Marshal(r.Event)
	if err != nil {
		return false, fmt.Errorf("encoding the run.started event: %w", err)
	}
	network := d.Network
	if network == "" {
		network = "host"
	}
	args := []string{"run", "--detach", "--name", ContainerName(r.ID), "--label", RunLabel + "=" + r.ID,
		"--network", network, "--env", "VP_RUN_EVENT=" + string(ev)}
	for _, e := range append(append([]string(nil), d.Env...), r.Env...) {
		args = append(args, "--env", e)
	}
	if len(devices) > 0 {
		list := strings.Join(devices, ",")
		// docker reads --gpus as CSV: a list of devices is quoted.
		args = append(args, "--label", GPULabel+"="+list, "--gpus", `"device=`+list+`"`)
	}
	if r.CPU != "" {
		args = append(args, "--cpus", r.CPU)
	}
	if r.Memory != "" {
		args = append(args, "--memory", dockerMemory(r.Memory))
	}
	args = append(args, r.Image)
	id, err := d.docker(ctx, args...)
	if err != nil {
		return false, fmt.Errorf("starting run %s: %w", r.ID, err)
	}
	d.Log.Info().Str("run", r.ID).Str("container", id).Str("image", r.Image).Strs("gpus", devices).Msg("run started")
	return true, nil
}

// dockerMemory turns a Kubernetes quantity (16Gi) into docker's (16g).
func dockerMemory(q string) string {
	for k, v := range map[string]string{"Ki": "k", "Mi": "m", "Gi": "g"} {
		if strings.HasSuffix(q, k) {
			return strings.TrimSuffix(q, k) + v
		}
	}
	return q
}

// Cancel drops a queued run (sending its run.finished, cancelled), or stops
// the run's container: SIGTERM to the agent, SIGKILL after the grace period (stopping a container that has ended does nothing). A
// run with no container is ErrUnknownRun, whether it never was or was
// removed by Wait.
func (d *DockerExecutor) Cancel(ctx context.Context, runID string) error {
	d.mu.Lock()
	for i, q := range d.queue {
		if q.ID == runID {
			d.queue = append(d.queue[:i], d.queue[i+1:]...)
			d.mu.Unlock()
			d.Log.Info().Str("run", runID).Msg("queued run cancelled")
			if err := sendEnding(ctx, endingSink{d.Sender, d.Source, d.Env, d.Log}, q, events.StatusCancelled, ReasonCancelledQueued); err != nil {
				return fmt.Errorf("reporting cancelled run %s: %w", runID, err)
			}
			return nil
		}
	}
	d.mu.Unlock()
	grace := d.Grace
	if grace == 0 {
		grace = 30 * time.Second
	}
	found, err := d.exists(ctx, runID)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: %s", ErrUnknownRun, runID)
	}
	if _, err := d.docker(ctx, "stop", "--time", strconv.Itoa(int(grace.Seconds())), ContainerName(runID)); err != nil {
		// Removed between the two commands (Wait removes it)?
		if found, ferr := d.exists(ctx, runID); ferr == nil && !found {
			return fmt.Errorf("%w: %s", ErrUnknownRun, runID)
		}
		return fmt.Errorf("stopping run %s: %w", runID, err)
	}
	return nil
}

// Wait waits for the run's container to end, returns the agent's exit
// code and removes the container. A run with no container is
// ErrUnknownRun.
func (d *DockerExecutor) Wait(ctx context.Context, runID string) (int, error) {
	name := ContainerName(runID)
	out, err := d.docker(ctx, "wait", name)
	if err != nil {
		if found, ferr := d.exists(ctx, runID); ferr == nil && !found {
			return 0, fmt.Errorf("%w: %s", ErrUnknownRun, runID)
		}
		return 0, fmt.Errorf("waiting for run %s: %w", runID, err)
	}
	code, err := strconv.Atoi(out)
	if err != nil {
		return 0, fmt.Errorf("docker wait %s: exit code %q: %w", name, out, err)
	}
	if _, err := d.docker(context.Background(), "rm", "--force", name); err != nil {
		d.Log.Warn().Err(err).Str("run", runID).Msg("removing container")
	}
	return code, nil
}

// Logs returns a run's container output (the agent's log lines).
func (d *DockerExecutor) Logs(ctx context.Context, runID string) (string, error) {
	return d.docker(ctx, "logs", ContainerName(runID))
}
