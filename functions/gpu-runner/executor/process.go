package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
)

// GPUDetector lists the host's GPU ids.
type GPUDetector func(ctx context.Context) ([]string, error)

// NvidiaSMI lists GPUs with nvidia-smi; no nvidia-smi means no GPUs.
func NvidiaSMI(ctx context.Context) ([]string, error) {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil, nil
	}
	out, err := exec.CommandContext(ctx, path, "--query-gpu=index", "--format=csv,noheader").Output()
	if err != nil {
		return nil, fmt.Errorf("running nvidia-smi: %w", err)
	}
	var ids []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ids = append(ids, l)
		}
	}
	return ids, nil
}

// Defaults of the process executor.
const (
	DefaultGrace    = 30 * time.Second
	DefaultRemember = 1024
	DefaultSource   = "/vp/gpu-runner"
)

// ProcessExecutor runs the agent as a process on this host: one run per
// GPU through CUDA_VISIBLE_DEVICES, at most Slots runs at once, the rest
// queued in order.
//
// Its table holds queued and running runs only. A run that ends leaves it
// for a bounded record of the last Remember ended runs (id, exit code), so
// that a redelivered run.started of a run that ended recently starts
// nothing and Wait still answers for it; a run older than that is
// forgotten, and launching its id again starts it again.
type ProcessExecutor struct {
	Agent string // the agent command: the vp-agent binary, or one that has it as a subcommand
	// AgentArgs come before the agent's own flags: Agent /path/to/vp with
	// AgentArgs ["agent"] runs `vp agent --event FILE --workdir DIR`.
	AgentArgs []string
	WorkDir   string   // each run works in WorkDir/<run id>
	Slots     int      // concurrent runs (default: one per GPU, or 1)
	Env       []string // added to every run's environment
	Grace     time.Duration
	Log       zerolog.Logger
	// Remember is how many ended runs are remembered (default 1024).
	Remember int
	// Source is the CloudEvents source of the run.finished the executor
	// sends itself, for a run cancelled before it started (default
	// /vp/gpu-runner).
	Source string
	// Sender delivers that run.finished (default: a sender to the K_SINK
	// of the run's environment, where its agent would have sent it).
	Sender sender.Interface

	mu      sync.Mutex
	gpus    []string
	freeGPU map[string]bool
	queue   []*procRun
	runs    map[string]*procRun // queued and running
	ended   map[string]ending   // the last Remember ended runs
	order   []string            // the ids in ended, oldest first
	running int
}

// ending is what is remembered of an ended run.
type ending struct {
	code int
	err  error
}

type procRun struct {
	r      Run
	cmd    *exec.Cmd
	gpus   []string
	done   chan struct{}
	code   int
	err    error
	queued bool
}

var _ Executor = (*ProcessExecutor)(nil)
var _ Waiter = (*ProcessExecutor)(nil)

// NewProcess makes a process executor, finding GPUs with detect.
func NewProcess(ctx context.Context, agent, workDir string, detect GPUDetector, log zerolog.Logger) (*ProcessExecutor, error) {
	if detect == nil {
		detect = NvidiaSMI
	}
	gpus, err := detect(ctx)
	if err != nil {
		return nil, fmt.Errorf("detecting GPUs: %w", err)
	}
	p := &ProcessExecutor{Agent: agent, WorkDir: workDir, gpus: gpus, freeGPU: map[string]bool{}, runs: map[string]*procRun{},
		ended: map[string]ending{}, Log: log, Grace: DefaultGrace, Remember: DefaultRemember, Source: DefaultSource}
	for _, g := range gpus {
		p.freeGPU[g] = true
	}
	p.Slots = len(gpus)
	if p.Slots == 0 {
		p.Slots = 1
	}
	log.Info().Strs("gpus", gpus).Int("slots", p.Slots).Msg("process executor ready")
	return p, nil
}

// Name is "process".
func (p *ProcessExecutor) Name() string { return Process }

// GPUs are the GPU ids found.
func (p *ProcessExecutor) GPUs() []string { return append([]string(nil), p.gpus...) }

// Launch queues r and starts what fits. A run queued, running or among
// the remembered ended runs is not launched again.
func (p *ProcessExecutor) Launch(_ context.Context, r Run) error {
	if err := r.Check(); err != nil {
		return err
	}
	if r.GPUs > len(p.gpus) {
		return fmt.Errorf("%w: run %s asks for %d, this host has %d", ErrNoGPUs, r.ID, r.GPUs, len(p.gpus))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.runs[r.ID]; ok {
		return nil // redelivered: already queued or running
	}
	if _, ok := p.ended[r.ID]; ok {
		return nil // redelivered: it ran already
	}
	pr := &procRun{r: r, done: make(chan struct{}), queued: true}
	p.runs[r.ID] = pr
	p.queue = append(p.queue, pr)
	p.scheduleLocked()
	return nil
}

// scheduleLocked starts queued runs in order while slots and GPUs allow.
func (p *ProcessExecutor) scheduleLocked() {
	for len(p.queue) > 0 && p.running < p.Slots {
		pr := p.queue[0]
		var gpus []string
		for _, g := range p.gpus {
			if len(gpus) == pr.r.GPUs {
				break
			}
			if p.freeGPU[g] {
				gpus = append(gpus, g)
			}
		}
		if len(gpus) < pr.r.GPUs {
			return // wait for GPUs; keep the order
		}
		p.queue = p.queue[1:]
		for _, g := range gpus {
			p.freeGPU[g] = false
		}
		pr.gpus, pr.queued = gpus, false
		p.running++
		if err := p.start(pr); err != nil {
			p.Log.Error().Err(err).Str("run", pr.r.ID).Msg("starting run")
			p.releaseLocked(pr)
			p.endLocked(pr, 0, err)
			// Its agent never ran to report it: the executor sends the
			// run's one ending, as for a run cancelled while queued.
			go func(r Run, reason string) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := p.sendEnding(ctx, r, events.StatusFailed, reason); err != nil {
					p.Log.Error().Err(err).Str("run", r.ID).Msg("reporting a run that could not start")
				}
			}(pr.r, ReasonNotStarted+": "+err.Error())
		}
	}
}

func (p *ProcessExecutor) start(pr *procRun) error {
	dir := filepath.Join(p.WorkDir, pr.r.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("making the run's directory: %w", err)
	}
	evFile := filepath.Join(dir, "event.json")
	b, err := json.Marshal(pr.r.Event)
	if err != nil {
		return fmt.Errorf("encoding the run.started event: %w", err)
	}
	if err := os.WriteFile(evFile, b, 0o644); err != nil {
		return fmt.Errorf("writing the run.started event: %w", err)
	}
	args := append(append([]string(nil), p.AgentArgs...), "--event", evFile, "--workdir", dir)
	cmd := exec.Command(p.Agent, args...)
	cmd.Env = append(append(append(os.Environ(), p.Env...), pr.r.Env...), "CUDA_VISIBLE_DEVICES="+strings.Join(pr.gpus, ","))
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return fmt.Errorf("creating the agent's log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", p.Agent, err)
	}
	pr.cmd = cmd
	p.Log.Info().Str("run", pr.r.ID).Strs("gpus", pr.gpus).Int("pid", cmd.Process.Pid).Msg("run started")
	go func() {
		err := cmd.Wait()
		logf.Close()
		var werr error
		if err != nil && cmd.ProcessState == nil {
			werr = err
		}
		p.mu.Lock()
		p.releaseLocked(pr)
		p.endLocked(pr, cmd.ProcessState.ExitCode(), werr)
		p.scheduleLocked()
		p.mu.Unlock()
		p.Log.Info().Str("run", pr.r.ID).Int("exit", pr.code).Msg("run ended")
	}()
	return nil
}

func (p *ProcessExecutor) releaseLocked(pr *procRun) {
	for _, g := range pr.gpus {
		p.freeGPU[g] = true
	}
	p.running--
}

// endLocked records how pr ended, wakes its waiters and moves it from the
// table to the bounded record of ended runs.
func (p *ProcessExecutor) endLocked(pr *procRun, code int, err error) {
	pr.code, pr.err = code, err
	close(pr.done)
	delete(p.runs, pr.r.ID)
	p.ended[pr.r.ID] = ending{code: code, err: err}
	p.order = append(p.order, pr.r.ID)
	remember := p.Remember
	if remember <= 0 {
		remember = DefaultRemember
	}
	for len(p.order) > remember {
		delete(p.ended, p.order[0])
		p.order = p.order[1:] // append reallocates: at most about 2×remember ids are held
	}
}

// Cancel removes a queued run and sends its run.finished (cancelled) to
// the run's sink, since its agent never starts to send it; or sends the
// running agent SIGTERM (it stops the adapter, keeps the outputs and
// reports the run cancelled) and kills it after the grace period. An
// ended run is left as it ended.
func (p *ProcessExecutor) Cancel(ctx context.Context, runID string) error {
	p.mu.Lock()
	pr, ok := p.runs[runID]
	if !ok {
		_, ended := p.ended[runID]
		p.mu.Unlock()
		if ended {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrUnknownRun, runID)
	}
	if pr.queued {
		for i, q := range p.queue {
			if q == pr {
				p.queue = append(p.queue[:i], p.queue[i+1:]...)
				break
			}
		}
		pr.queued = false
		p.endLocked(pr, 143, nil)
		p.mu.Unlock()
		p.Log.Info().Str("run", runID).Msg("queued run cancelled")
		if err := p.sendEnding(ctx, pr.r, events.StatusCancelled, ReasonCancelledQueued); err != nil {
			return fmt.Errorf("reporting cancelled run %s: %w", runID, err)
		}
		return nil
	}
	cmd := pr.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	select {
	case <-pr.done:
		return nil
	default:
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping run %s: %w", runID, err)
	}
	grace := p.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	go func() {
		select {
		case <-pr.done:
		case <-time.After(grace):
			if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				p.Log.Error().Err(err).Str("run", runID).Msg("killing run after its grace period")
			}
		}
	}()
	return nil
}

// Wait blocks until the run ends and returns the agent's exit code (143
// for a run cancelled while queued).
func (p *ProcessExecutor) Wait(ctx context.Context, runID string) (int, error) {
	p.mu.Lock()
	pr, ok := p.runs[runID]
	e, ended := p.ended[runID]
	p.mu.Unlock()
	if ended {
		return e.code, e.err
	}
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrUnknownRun, runID)
	}
	select {
	case <-pr.done:
		return pr.code, pr.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Status says whether a run is queued, running, ended (and remembered) or
// unknown, and which GPUs a running run holds.
func (p *ProcessExecutor) Status(runID string) (state string, gpus []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.runs[runID]
	switch {
	case ok && pr.queued:
		return "queued", nil
	case ok:
		return "running", append([]string(nil), pr.gpus...)
	}
	if _, ok := p.ended[runID]; ok {
		return "ended", nil
	}
	return "unknown", nil
}

// Table is how many runs the executor holds (queued and running) and how
// many ended runs it remembers.
func (p *ProcessExecutor) Table() (active, remembered int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.runs), len(p.ended)
}

// Shutdown drops the queued runs and kills the running agents (their
// process groups, at once, so that none reports the run as ended), for a
// host going down that will launch them again when it comes back: a run
// relaunched with its id resumes from its last checkpoint. It returns the
// ids of the runs it interrupted, and the executor takes no runs after it.
func (p *ProcessExecutor) Shutdown() []string {
	p.mu.Lock()
	var ids []string
	var running []*procRun
	for id, pr := range p.runs {
		ids = append(ids, id)
		if !pr.queued && pr.cmd != nil && pr.cmd.Process != nil {
			running = append(running, pr)
		}
	}
	p.queue = nil
	p.Slots = -1 // nothing starts any more
	p.mu.Unlock()
	for _, pr := range running {
		if err := syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			p.Log.Error().Err(err).Str("run", pr.r.ID).Msg("interrupting a run")
		}
		<-pr.done
	}
	sort.Strings(ids)
	if len(ids) > 0 {
		p.Log.Info().Strs("runs", ids).Msg("runs interrupted: they resume when relaunched")
	}
	return ids
}
