package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/internal/dockerapi"
)

// DockerExecutor runs the agent in the run's framework image on a Docker
// Engine, speaking the Engine API over its socket (no docker CLI: under
// docker-compose the gpu-runner is a static binary with the socket
// mounted). The image's entrypoint is the agent; the run.started event
// goes in VP_RUN_EVENT, GPUs as device requests, limits as NanoCpus and
// Memory. An image the engine lacks is pulled first. Containers are named
// after the run id and labelled with it, so a redelivered run starts
// nothing twice.
//
// A run's container is removed RemoveAfter after it ends (kept that long
// for its logs and for a cancel under way): a watcher of each run waits
// for its end, and a sweep, from Start (or the first Launch) and then
// every SweepEvery, removes those no watcher saw end (runs of an earlier
// instance, a watcher cut off). What the executor knew of a run whose
// container is gone is a bounded record of the last Remember ended runs
// (their exit codes), as in the process executor: a redelivered run of
// that record starts nothing, Wait answers its exit code and Cancel leaves
// it as it ended; a run older than that is forgotten (the gpu-runner's
// ledger keeps an ended job from being launched again). Close stops the
// watchers and the sweep.
//
// GPUs are devices, not counts: a run asking for n GPUs gets n of Devices
// that no running container of another run holds (each run's container is
// labelled with its devices, so the engine is the record, across restarts
// of this executor too), as a device request for those ids. A run that
// finds too few free waits in a queue, in order, and starts when a run
// ends; cancelling it there sends its run.finished (cancelled), since no
// agent will.
type DockerExecutor struct {
	// Host is the engine's address as DOCKER_HOST names it:
	// unix:///path/to/docker.sock or tcp://host:port (default
	// dockerapi.DefaultHost, unix:///var/run/docker.sock).
	Host string
	// Network is the network the runs' containers join (default "host":
	// the agent reaches loopback MinIO and broker). Under docker-compose,
	// the compose network, where the agent reaches the services by name.
	Network string
	// PullHosts maps the registry host an image reference names, as the
	// functions reach the registry (registry:5000), to the host the engine
	// pulls from (127.0.0.1:5000): the rewritten reference is pulled and
	// run. A host not in the map is pulled as it is.
	PullHosts map[string]string
	Env       []string // added to every run
	// Grace is how long a cancelled run's agent has between SIGTERM and
	// SIGKILL (default 30 s).
	Grace time.Duration
	Log   zerolog.Logger
	// Devices are the host's GPU ids (from nvidia-smi: see NvidiaSMI).
	Devices []string
	// Source and Sender are where the run.finished of a run cancelled in
	// the queue goes (defaults as the process executor's).
	Source string
	Sender sender.Interface
	// Poll is how often queued runs look for free devices (default 1 s).
	Poll time.Duration
	// RemoveAfter is how long a run's container is kept once it has ended
	// (default DefaultRemoveAfter); a negative one keeps them (only Wait
	// removes one).
	RemoveAfter time.Duration
	// SweepEvery is how often the containers of ended runs are looked for
	// (default DefaultSweepEvery).
	SweepEvery time.Duration
	// Remember is how many ended runs are remembered (default
	// DefaultRemember).
	Remember int

	once   sync.Once
	api    *dockerapi.Client
	apiErr error

	mu     sync.Mutex
	queue  []Run
	ticker bool
	// Removal of ended runs' containers: started once, by Start or the
	// first Launch, until Close (cancel ends the watchers and the sweep).
	removing bool
	closed   bool
	done     context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	watched  map[string]bool // containers a watcher waits for, by id
	ended    map[string]int  // exit codes of the last Remember ended runs
	order    []string        // the ids in ended, oldest first
}

// Defaults of the docker executor's removal of ended runs' containers.
const (
	DefaultRemoveAfter = time.Minute
	DefaultSweepEvery  = 30 * time.Second
)

// removeTimeout bounds the removal of one container by a watcher that
// Close cut short.
const removeTimeout = 10 * time.Second

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

// engine is the client of d's engine, made on first use.
func (d *DockerExecutor) engine() (*dockerapi.Client, error) {
	d.once.Do(func() {
		d.api, d.apiErr = dockerapi.New(d.Host)
		if d.apiErr != nil {
			d.apiErr = fmt.Errorf("docker executor: %w", d.apiErr)
		}
	})
	return d.api, d.apiErr
}

// container is the run's container as the engine lists it (by the run's
// label, whatever its state), nil when there is none; an engine that
// cannot say is an error, never "none".
func (d *DockerExecutor) container(ctx context.Context, runID string) (*dockerapi.Container, error) {
	api, err := d.engine()
	if err != nil {
		return nil, err
	}
	list, err := api.List(ctx, true, dockerapi.Filters{"label": {RunLabel + "=" + runID}})
	if err != nil {
		return nil, fmt.Errorf("looking for run %s: %w", runID, err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	return &list[0], nil
}

// Runs lists the runs whose containers the engine has, by their label,
// with the state of each (created, running, exited, ...): after a restart
// of the gpu-runner, the runs under way or ended and not yet removed.
func (d *DockerExecutor) Runs(ctx context.Context) (map[string]string, error) {
	api, err := d.engine()
	if err != nil {
		return nil, err
	}
	list, err := api.List(ctx, true, dockerapi.Filters{"label": {RunLabel}})
	if err != nil {
		return nil, fmt.Errorf("listing the runs' containers: %w", err)
	}
	runs := map[string]string{}
	for _, c := range list {
		runs[c.Labels[RunLabel]] = c.State
	}
	return runs, nil
}

// pingTimeout bounds Available's question.
const pingTimeout = 10 * time.Second

// Available reports whether the Docker Engine answers (its /_ping) and
// speaks an API version the executor speaks.
func (d *DockerExecutor) Available(ctx context.Context) bool {
	api, err := d.engine()
	if err != nil {
		d.Log.Warn().Err(err).Msg("no Docker Engine")
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	v, err := api.Version(ctx)
	if err != nil {
		d.Log.Debug().Err(err).Str("host", api.Host()).Msg("the Docker Engine does not answer")
		return false
	}
	d.Log.Debug().Str("host", api.Host()).Str("api", v).Msg("the Docker Engine answers")
	return true
}

// PullRef is the reference the engine pulls and runs for the image ref:
// ref with its registry host replaced as PullHosts maps it. A reference
// that does not parse is ErrInvalidRun.
func (d *DockerExecutor) PullRef(ref string) (string, error) {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("%w: image %q: %w", ErrInvalidRun, ref, err)
	}
	to, ok := d.PullHosts[reference.Domain(n)]
	if !ok {
		return ref, nil
	}
	out := to + "/" + reference.Path(n)
	if t, ok := n.(reference.Tagged); ok {
		out += ":" + t.Tag()
	}
	if dg, ok := n.(reference.Digested); ok {
		out += "@" + dg.Digest().String()
	}
	if _, err := reference.ParseNormalizedNamed(out); err != nil {
		return "", fmt.Errorf("rewriting image %q for the engine (%s to %s): %w", ref, reference.Domain(n), to, err)
	}
	return out, nil
}

// ParsePullHosts reads a PullHosts setting: FROM=TO pairs separated by
// commas, each a registry host[:port] ("registry:5000=127.0.0.1:5000").
func ParsePullHosts(s string) (map[string]string, error) {
	hosts := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		from, to, ok := strings.Cut(pair, "=")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || to == "" || strings.ContainsAny(from+to, "/@ ") {
			return nil, fmt.Errorf("%q: want FROM=TO, registry hosts (host or host:port)", pair)
		}
		hosts[from] = to
	}
	return hosts, nil
}

// ensureImage pulls ref unless the engine has it.
func (d *DockerExecutor) ensureImage(ctx context.Context, api *dockerapi.Client, ref string) error {
	ok, err := api.ImageExists(ctx, ref)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return d.pull(ctx, api, ref)
}

func (d *DockerExecutor) pull(ctx context.Context, api *dockerapi.Client, ref string) error {
	start := time.Now()
	d.Log.Info().Str("image", ref).Msg("pulling the run's image")
	if err := api.Pull(ctx, ref); err != nil {
		return err
	}
	d.Log.Info().Str("image", ref).Dur("took", time.Since(start)).Msg("image pulled")
	return nil
}

// queuedLocked reports whether the run is in the queue; d.mu is held.
func (d *DockerExecutor) queuedLocked(runID string) bool {
	for _, q := range d.queue {
		if q.ID == runID {
			return true
		}
	}
	return false
}

// Launch starts the run's container unless it exists or is queued,
// pulling its image first where the engine lacks it; a run asking for GPUs
// that are all taken is queued. A container of the run that was created
// and never started (an earlier gpu-runner stopped between the two) is
// started.
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
	if _, err := limits(r); err != nil {
		return err
	}
	image, err := d.PullRef(r.Image)
	if err != nil {
		return err
	}
	api, err := d.engine()
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.startRemovingLocked()
	queued := d.queuedLocked(r.ID)
	_, ended := d.endedLocked(r.ID)
	d.mu.Unlock()
	if queued || ended {
		return nil // redelivered: queued, or it ran already
	}
	c, err := d.container(ctx, r.ID)
	if err != nil {
		return err
	}
	if c != nil && c.State != "created" {
		return nil // redelivered: the run exists
	}
	// Pull outside the lock: a pull may take minutes, other runs' launches
	// and cancels do not wait for it.
	if c == nil {
		if err := d.ensureImage(ctx, api, image); err != nil {
			return fmt.Errorf("run %s: %w", r.ID, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Under the lock, a run whose container is being removed is in the
	// record already (removeEnded records it first): the container or the
	// record says it ran.
	if _, ended := d.endedLocked(r.ID); ended || d.queuedLocked(r.ID) {
		return nil
	}
	if c, err = d.container(ctx, r.ID); err != nil {
		return err
	}
	if c != nil {
		if c.State != "created" {
			return nil
		}
		d.Log.Warn().Str("run", r.ID).Str("container", c.ID).Msg("the run's container was created and never started: starting it")
		if err := api.Start(ctx, c.ID); err != nil {
			return fmt.Errorf("starting run %s: %w", r.ID, err)
		}
		d.watchLocked(r.ID, c.ID, true)
		return nil
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

// holding are the states of a container that holds its devices.
var holding = []string{"created", "running", "paused", "restarting"}

// inUse are the devices the containers of runs hold (created or running).
func (d *DockerExecutor) inUse(ctx context.Context, api *dockerapi.Client) (map[string]bool, error) {
	list, err := api.List(ctx, true, dockerapi.Filters{"label": {GPULabel}, "status": holding})
	if err != nil {
		return nil, fmt.Errorf("asking which GPUs are in use: %w", err)
	}
	used := map[string]bool{}
	for _, c := range list {
		for _, dev := range strings.Split(c.Labels[GPULabel], ",") {
			if dev != "" {
				used[dev] = true
			}
		}
	}
	return used, nil
}

// resources are a run's limits as the engine takes them.
type resources struct{ nanoCPUs, memory int64 }

// limits reads r's CPU and Memory (Kubernetes quantities); one that does
// not parse is ErrInvalidRun.
func limits(r Run) (resources, error) {
	var res resources
	if r.CPU != "" {
		v, err := quantity(r.CPU)
		if err != nil {
			return res, fmt.Errorf("%w: run %s: cpu: %w", ErrInvalidRun, r.ID, err)
		}
		if res.nanoCPUs, err = ceilInt64(v.Mul(v, big.NewRat(1e9, 1))); err != nil {
			return res, fmt.Errorf("%w: run %s: cpu: %w", ErrInvalidRun, r.ID, err)
		}
	}
	if r.Memory != "" {
		v, err := quantity(r.Memory)
		if err == nil {
			res.memory, err = ceilInt64(v)
		}
		if err != nil {
			return res, fmt.Errorf("%w: run %s: memory: %w", ErrInvalidRun, r.ID, err)
		}
	}
	return res, nil
}

var quantityRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$`)

// quantity is the value of a Kubernetes quantity: 4, 500m, 1.5, 16Gi,
// 512Mi, 1G, 1e9.
func quantity(q string) (*big.Rat, error) {
	m := quantityRE.FindStringSubmatch(q)
	if m == nil {
		return nil, fmt.Errorf("%q is not a Kubernetes quantity", q)
	}
	v, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return nil, fmt.Errorf("%q is not a Kubernetes quantity", q)
	}
	suffix := m[2]
	pow := func(base, exp int64) *big.Rat {
		return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil))
	}
	switch {
	case suffix == "":
	case strings.HasSuffix(suffix, "i"):
		v.Mul(v, pow(2, 10*int64(strings.Index("KMGTPE", suffix[:1])+1)))
	case suffix[0] == 'e' || suffix[0] == 'E':
		var exp int64
		if _, err := fmt.Sscan(suffix[1:], &exp); err != nil || exp > 30 || exp < -30 {
			return nil, fmt.Errorf("%q: exponent out of range", q)
		}
		if exp >= 0 {
			v.Mul(v, pow(10, exp))
		} else {
			v.Quo(v, pow(10, -exp))
		}
	default:
		exp := map[byte]int64{'n': -9, 'u': -6, 'm': -3, 'k': 3, 'M': 6, 'G': 9, 'T': 12, 'P': 15, 'E': 18}[suffix[0]]
		if exp >= 0 {
			v.Mul(v, pow(10, exp))
		} else {
			v.Quo(v, pow(10, -exp))
		}
	}
	return v, nil
}

// ceilInt64 is v rounded up, as an int64.
func ceilInt64(v *big.Rat) (int64, error) {
	q, r := new(big.Int).QuoRem(v.Num(), v.Denom(), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("%s is too large", v.FloatString(0))
	}
	return q.Int64(), nil
}

// startLocked creates and starts r's container with free devices, or
// reports that too few are free. A container that fails to start is
// removed, so that a retry creates it anew.
func (d *DockerExecutor) startLocked(ctx context.Context, r Run) (bool, error) {
	api, err := d.engine()
	if err != nil {
		return false, err
	}
	var devices []string
	if r.GPUs > 0 {
		used, err := d.inUse(ctx, api)
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
	res, err := limits(r)
	if err != nil {
		return false, err
	}
	image, err := d.PullRef(r.Image)
	if err != nil {
		return false, err
	}
	network := d.Network
	if network == "" {
		network = "host"
	}
	cfg := dockerapi.ContainerConfig{
		Image:  image,
		Env:    append(append([]string{"VP_RUN_EVENT=" + string(ev)}, d.Env...), r.Env...),
		Labels: map[string]string{RunLabel: r.ID},
		HostConfig: dockerapi.HostConfig{
			NetworkMode: network, NanoCPUs: res.nanoCPUs, Memory: res.memory,
		},
	}
	if len(devices) > 0 {
		cfg.Labels[GPULabel] = strings.Join(devices, ",")
		cfg.HostConfig.DeviceRequests = []dockerapi.DeviceRequest{{DeviceIDs: devices, Capabilities: [][]string{{"gpu"}}}}
	}
	name := ContainerName(r.ID)
	id, err := api.Create(ctx, name, cfg)
	if errors.Is(err, dockerapi.ErrNotFound) {
		// No such image: removed since Launch pulled it, or a queued run's.
		if err = d.pull(ctx, api, image); err == nil {
			id, err = api.Create(ctx, name, cfg)
		}
	}
	if errors.Is(err, dockerapi.ErrConflict) {
		d.Log.Warn().Str("run", r.ID).Str("container", name).Msg("a container of the run's name exists: the run is not started again")
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("run %s: %w", r.ID, err)
	}
	if err := api.Start(ctx, id); err != nil {
		if rerr := api.Remove(context.WithoutCancel(ctx), id); rerr != nil {
			d.Log.Warn().Err(rerr).Str("run", r.ID).Msg("removing the container that did not start")
		}
		return false, fmt.Errorf("run %s: %w", r.ID, err)
	}
	d.Log.Info().Str("run", r.ID).Str("container", id).Str("image", image).Str("network", network).Strs("gpus", devices).Msg("run started")
	d.watchLocked(r.ID, id, true)
	return true, nil
}

// Cancel drops a queued run (sending its run.finished, cancelled), or
// stops the run's container: SIGTERM to the agent (which reports the run
// cancelled), SIGKILL after the grace period (the executor then sends the
// run.finished, cancelled, ReasonKilled); Cancel returns once the
// container has stopped. Stopping a
// container that has ended does nothing; one that was created and never
// started is removed, and its run.finished (cancelled) sent, since no
// agent will. A run with no container is ErrUnknownRun, unless it is in the
// record of ended runs (its container removed): that one is left as it
// ended.
func (d *DockerExecutor) Cancel(ctx context.Context, runID string) error {
	api, err := d.engine()
	if err != nil {
		return err
	}
	d.mu.Lock()
	for i, q := range d.queue {
		if q.ID == runID {
			d.queue = append(d.queue[:i], d.queue[i+1:]...)
			d.rememberLocked(runID, 143)
			d.mu.Unlock()
			d.Log.Info().Str("run", runID).Msg("queued run cancelled")
			if err := sendEnding(ctx, endingSink{d.Sender, d.Source, d.Env, d.Log}, q, events.StatusCancelled, ReasonCancelledQueued); err != nil {
				return fmt.Errorf("reporting cancelled run %s: %w", runID, err)
			}
			return nil
		}
	}
	// Under the lock no start is under way: a container created is one
	// that an earlier gpu-runner never started.
	c, err := d.container(ctx, runID)
	if err == nil && c != nil && c.State == "created" {
		var r Run
		r, err = d.removeCreated(ctx, api, runID, c.ID)
		if err == nil {
			d.rememberLocked(runID, 143)
		}
		d.mu.Unlock()
		if err != nil {
			return err
		}
		if err := sendEnding(ctx, endingSink{d.Sender, d.Source, nil, d.Log}, r, events.StatusCancelled, ReasonCancelledQueued); err != nil {
			return fmt.Errorf("reporting cancelled run %s: %w", runID, err)
		}
		return nil
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if c == nil {
		return d.gone(runID)
	}
	if c.State == "exited" || c.State == "dead" || c.State == "removing" {
		return nil
	}
	switch err := api.Kill(ctx, c.ID, "SIGTERM"); {
	case errors.Is(err, dockerapi.ErrNotFound):
		return d.gone(runID) // removed meanwhile
	case errors.Is(err, dockerapi.ErrConflict):
		return nil // ended meanwhile: not running
	case err != nil:
		return fmt.Errorf("stopping run %s: %w", runID, err)
	}
	grace := d.Grace
	if grace == 0 {
		grace = 30 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, grace)
	_, err = api.Wait(wctx, c.ID)
	cancel()
	if err == nil || errors.Is(err, dockerapi.ErrNotFound) {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stopping run %s: %w", runID, err)
	}
	d.Log.Warn().Str("run", runID).Dur("grace", grace).Msg("the agent did not stop within the grace period: killing it")
	r, rerr := d.runIn(ctx, api, runID, c.ID) // before the kill: Wait may remove the container then
	if err := api.Kill(ctx, c.ID, "SIGKILL"); errors.Is(err, dockerapi.ErrNotFound) || errors.Is(err, dockerapi.ErrConflict) {
		return nil // it ended at last
	} else if err != nil {
		return fmt.Errorf("killing run %s: %w", runID, err)
	}
	if _, err := api.Wait(ctx, c.ID); err != nil && !errors.Is(err, dockerapi.ErrNotFound) {
		return fmt.Errorf("stopping run %s: %w", runID, err)
	}
	// A killed agent reports nothing: the run's ending (the one ending of
	// the run: an ending the agent did send has the same id).
	if rerr == nil {
		rerr = sendEnding(ctx, endingSink{d.Sender, d.Source, nil, d.Log}, r, events.StatusCancelled, ReasonKilled)
	}
	if rerr != nil {
		d.Log.Error().Err(rerr).Str("run", runID).Msg("the killed run's run.finished (cancelled) not sent")
	}
	return nil
}

// gone is what Cancel answers for a run with no container: nothing for an
// ended run of the record, else ErrUnknownRun.
func (d *DockerExecutor) gone(runID string) error {
	d.mu.Lock()
	_, ended := d.endedLocked(runID)
	d.mu.Unlock()
	if ended {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnknownRun, runID)
}

// ReasonKilled is the reason of the run.finished the docker executor
// sends for a cancelled run whose agent it killed after the grace period.
const ReasonKilled = "cancelled: the run agent did not stop within the grace period and was killed"

// runIn is the run a container was given: its event and environment.
func (d *DockerExecutor) runIn(ctx context.Context, api *dockerapi.Client, runID, id string) (Run, error) {
	r := Run{ID: runID}
	info, err := api.Inspect(ctx, id)
	if err != nil {
		return r, fmt.Errorf("reading run %s's container: %w", runID, err)
	}
	for _, kv := range info.Config.Env {
		if v, ok := strings.CutPrefix(kv, "VP_RUN_EVENT="); ok {
			if err := json.Unmarshal([]byte(v), &r.Event); err != nil {
				return r, fmt.Errorf("reading run %s's container: its event: %w", runID, err)
			}
		} else {
			r.Env = append(r.Env, kv)
		}
	}
	return r, nil
}

// removeCreated removes a run's container that was never started and
// returns the run as it was given (its event and environment), for its
// ending.
func (d *DockerExecutor) removeCreated(ctx context.Context, api *dockerapi.Client, runID, id string) (Run, error) {
	r, err := d.runIn(ctx, api, runID, id)
	if err != nil {
		return r, fmt.Errorf("cancelling run %s: %w", runID, err)
	}
	if err := api.Remove(ctx, id); err != nil && !errors.Is(err, dockerapi.ErrNotFound) {
		return r, fmt.Errorf("cancelling run %s: %w", runID, err)
	}
	d.Log.Info().Str("run", runID).Msg("run cancelled before its container started: container removed")
	return r, nil
}

// Wait waits for the run's container to end, returns the agent's exit
// code and removes the container. A run with no container is the exit code
// of the record of ended runs (143 for one cancelled before it started),
// else (a queued one too) ErrUnknownRun.
func (d *DockerExecutor) Wait(ctx context.Context, runID string) (int, error) {
	api, err := d.engine()
	if err != nil {
		return 0, err
	}
	// Under the lock, a start under way (between create and start) has
	// finished.
	d.mu.Lock()
	queued := d.queuedLocked(runID)
	d.mu.Unlock()
	if queued {
		return 0, fmt.Errorf("%w: %s is queued, it has no container yet", ErrUnknownRun, runID)
	}
	name := ContainerName(runID)
	code, err := api.Wait(ctx, name)
	if errors.Is(err, dockerapi.ErrNotFound) {
		d.mu.Lock()
		code, ended := d.endedLocked(runID)
		d.mu.Unlock()
		if ended {
			return code, nil
		}
		return 0, fmt.Errorf("%w: %s", ErrUnknownRun, runID)
	}
	if err != nil {
		return 0, fmt.Errorf("waiting for run %s: %w", runID, err)
	}
	d.mu.Lock()
	d.rememberLocked(runID, code)
	d.mu.Unlock()
	if err := api.Remove(context.WithoutCancel(ctx), name); err != nil && !errors.Is(err, dockerapi.ErrNotFound) {
		d.Log.Warn().Err(err).Str("run", runID).Msg("removing container")
	}
	return code, nil
}

// Logs returns a run's container output (the agent's log lines, stdout
// and stderr interleaved). A run with no container is ErrUnknownRun.
func (d *DockerExecutor) Logs(ctx context.Context, runID string) (string, error) {
	api, err := d.engine()
	if err != nil {
		return "", err
	}
	out, err := api.Logs(ctx, ContainerName(runID))
	if errors.Is(err, dockerapi.ErrNotFound) {
		return "", fmt.Errorf("%w: %s", ErrUnknownRun, runID)
	}
	return out, err
}

// endedLocked is the exit code of an ended run of the record; d.mu is
// held.
func (d *DockerExecutor) endedLocked(runID string) (int, bool) {
	code, ok := d.ended[runID]
	return code, ok
}

// rememberLocked records an ended run's exit code, forgetting the oldest
// beyond Remember; d.mu is held.
func (d *DockerExecutor) rememberLocked(runID string, code int) {
	if d.ended == nil {
		d.ended = map[string]int{}
	}
	if _, ok := d.ended[runID]; !ok {
		d.order = append(d.order, runID)
	}
	d.ended[runID] = code
	remember := d.Remember
	if remember <= 0 {
		remember = DefaultRemember
	}
	for len(d.order) > remember {
		delete(d.ended, d.order[0])
		d.order = d.order[1:] // append reallocates: at most about 2×remember ids are held
	}
}

// removeAfter is RemoveAfter or its default.
func (d *DockerExecutor) removeAfter() time.Duration {
	if d.RemoveAfter == 0 {
		return DefaultRemoveAfter
	}
	return d.RemoveAfter
}

// Start starts the removal of ended runs' containers: a sweep at once and
// every SweepEvery, and a watcher of each run found running; Launch starts
// it too. It does nothing after Close, or when RemoveAfter is negative.
func (d *DockerExecutor) Start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.startRemovingLocked()
}

// startRemovingLocked starts the sweep, once; d.mu is held.
func (d *DockerExecutor) startRemovingLocked() {
	if d.removing || d.closed || d.RemoveAfter < 0 {
		return
	}
	d.removing = true
	d.done, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1)
	go d.sweepEvery()
}

// Close stops the removal of ended runs' containers and returns once its
// watchers and sweep have stopped, or when ctx ends. The runs this
// executor started that have ended have their containers removed at once
// (nothing of the executor asks for them any more); running runs are left
// running (their agents report by event), their containers removed by the
// sweep of the next executor that starts. Launch, Cancel and Wait still
// answer after Close; nothing but Wait removes a container then.
func (d *DockerExecutor) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	cancel := d.cancel
	d.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	stopped := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing the docker executor: %w", ctx.Err())
	}
}

// sweepEvery sweeps at once, then every SweepEvery until Close.
func (d *DockerExecutor) sweepEvery() {
	defer d.wg.Done()
	every := d.SweepEvery
	if every <= 0 {
		every = DefaultSweepEvery
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-d.done.Done():
			return
		case <-t.C:
		}
		if err := d.sweep(d.done); err != nil && d.done.Err() == nil {
			d.Log.Warn().Err(err).Msg("removing the containers of ended runs")
		}
		t.Reset(every)
	}
}

// sweep removes the containers of runs that ended RemoveAfter ago or
// more (by the engine's time of their end), and watches the running ones
// no watcher waits for (runs of an earlier instance).
func (d *DockerExecutor) sweep(ctx context.Context) error {
	api, err := d.engine()
	if err != nil {
		return err
	}
	list, err := api.List(ctx, true, dockerapi.Filters{"label": {RunLabel}})
	if err != nil {
		return fmt.Errorf("listing the runs' containers: %w", err)
	}
	var errs []error
	for _, c := range list {
		runID := c.Labels[RunLabel]
		switch c.State {
		case "exited", "dead":
			if err := d.removeEnded(ctx, api, runID, c.ID, d.removeAfter()); err != nil {
				errs = append(errs, err)
			}
		case "running", "paused", "restarting":
			d.mu.Lock()
			d.watchLocked(runID, c.ID, false)
			d.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// watchLocked starts a watcher of a run's container (its own: one this
// executor started), unless one waits for it already; d.mu is held.
func (d *DockerExecutor) watchLocked(runID, id string, own bool) {
	d.startRemovingLocked()
	if !d.removing || d.closed || d.watched[id] {
		return
	}
	if d.watched == nil {
		d.watched = map[string]bool{}
	}
	d.watched[id] = true
	d.wg.Add(1)
	go d.watch(runID, id, own)
}

// watch waits for a run's container to end, records the run's exit code
// and removes the container RemoveAfter later. Cut short by Close, it
// removes the container of an own run that has ended at once.
func (d *DockerExecutor) watch(runID, id string, own bool) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.watched, id)
		d.mu.Unlock()
	}()
	api, err := d.engine()
	if err != nil {
		return
	}
	code, err := api.Wait(d.done, id)
	if err != nil {
		if d.done.Err() == nil && !errors.Is(err, dockerapi.ErrNotFound) {
			d.Log.Warn().Err(err).Str("run", runID).Msg("watching the run's container: the sweep removes it once it has ended")
		}
		return
	}
	d.mu.Lock()
	d.rememberLocked(runID, code)
	d.mu.Unlock()
	t := time.NewTimer(d.removeAfter())
	defer t.Stop()
	select {
	case <-t.C:
	case <-d.done.Done():
		if !own {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	if err := d.removeEnded(ctx, api, runID, id, 0); err != nil {
		d.Log.Warn().Err(err).Str("run", runID).Msg("removing the container of an ended run")
	}
}

// removeEnded removes a run's container if it has ended, after ago or
// more, recording the run's exit code first (under the lock, so that a
// Launch finds the container or the record).
func (d *DockerExecutor) removeEnded(ctx context.Context, api *dockerapi.Client, runID, id string, after time.Duration) error {
	info, err := api.Inspect(ctx, id)
	if errors.Is(err, dockerapi.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", runID, err)
	}
	if st := info.State.Status; st != "exited" && st != "dead" {
		return nil
	}
	if after > 0 && time.Since(info.State.FinishedAt) < after {
		return nil
	}
	d.mu.Lock()
	d.rememberLocked(runID, info.State.ExitCode)
	d.mu.Unlock()
	if err := api.Remove(ctx, id); err != nil && !errors.Is(err, dockerapi.ErrNotFound) {
		return fmt.Errorf("run %s: %w", runID, err)
	}
	d.Log.Info().Str("run", runID).Str("container", id).Int("exit", info.State.ExitCode).Msg("ended run's container removed")
	return nil
}
