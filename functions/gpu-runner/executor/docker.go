package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// DockerExecutor runs the agent in the run's framework image on the local
// Docker Engine: the image's entrypoint is the agent, the run.started event
// goes in VP_RUN_EVENT, GPUs through --gpus, limits through --cpus and
// --memory. Containers are named after the run id, so a redelivered run
// starts nothing twice, and removed once waited for.
type DockerExecutor struct {
	Docker  string   // the docker command (default "docker")
	Network string   // --network (default "host": the agent reaches loopback MinIO and broker)
	Env     []string // added to every run
	Grace   time.Duration
	Log     zerolog.Logger
}

var _ Executor = (*DockerExecutor)(nil)
var _ Waiter = (*DockerExecutor)(nil)

// Name is "docker".
func (d *DockerExecutor) Name() string { return Docker }

// RunLabel labels a run's container with the run id.
const RunLabel = "dev.visionplatform.run"

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

// Launch starts the run's container (detached) unless it exists.
func (d *DockerExecutor) Launch(ctx context.Context, r Run) error {
	if err := r.Check(); err != nil {
		return err
	}
	if r.Image == "" {
		return fmt.Errorf("%w: run %s: no image", ErrInvalidRun, r.ID)
	}
	name := ContainerName(r.ID)
	found, err := d.exists(ctx, r.ID)
	if err != nil {
		return err
	}
	if found {
		return nil // redelivered: the run exists
	}
	ev, err := json.Marshal(r.Event)
	if err != nil {
		return fmt.Errorf("encoding the run.started event: %w", err)
	}
	network := d.Network
	if network == "" {
		network = "host"
	}
	args := []string{"run", "--detach", "--name", name, "--label", RunLabel + "=" + r.ID,
		"--network", network, "--env", "VP_RUN_EVENT=" + string(ev)}
	for _, e := range append(append([]string(nil), d.Env...), r.Env...) {
		args = append(args, "--env", e)
	}
	if r.GPUs > 0 {
		args = append(args, "--gpus", strconv.Itoa(r.GPUs))
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
		return fmt.Errorf("starting run %s: %w", r.ID, err)
	}
	d.Log.Info().Str("run", r.ID).Str("container", id).Str("image", r.Image).Int("gpus", r.GPUs).Msg("run started")
	return nil
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

// Cancel stops the run's container: SIGTERM to the agent, SIGKILL after
// the grace period (stopping a container that has ended does nothing). A
// run with no container is ErrUnknownRun, whether it never was or was
// removed by Wait.
func (d *DockerExecutor) Cancel(ctx context.Context, runID string) error {
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
