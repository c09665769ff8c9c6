package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
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
		return nil, fmt.Errorf("nvidia-smi: %w", err)
	}
	var ids []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ids = append(ids, l)
		}
	}
	return ids, nil
}

// ProcessExecutor runs the agent as a process on this host: one run per
// GPU through CUDA_VISIBLE_DEVICES, at most Slots runs at once, the rest
// queued in order.
type ProcessExecutor struct {
	Agent   string   // the vp-agent binary
	WorkDir string   // each run works in WorkDir/<run id>
	Slots   int      // concurrent runs (default: one per GPU, or 1)
	Env     []string // added to every run's environment
	Grace   time.Duration
	Log     zerolog.Logger

	mu      sync.Mutex
	gpus    []string
	freeGPU map[string]bool
	queue   []*procRun
	runs    map[string]*procRun
	running int
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
		return nil, err
	}
	p := &ProcessExecutor{Agent: agent, WorkDir: workDir, gpus: gpus, freeGPU: map[string]bool{}, runs: map[string]*procRun{}, Log: log, Grace: 30 * time.Second}
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

// Launch queues r and starts what fits.
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
			pr.err = err
			p.releaseLocked(pr)
			close(pr.done)
		}
	}
}

func (p *ProcessExecutor) start(pr *procRun) error {
	dir := filepath.Join(p.WorkDir, pr.r.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	evFile := filepath.Join(dir, "event.json")
	b, err := json.Marshal(pr.r.Event)
	if err != nil {
		return err
	}
	if err := os.WriteFile(evFile, b, 0o644); err != nil {
		return err
	}
	cmd := exec.Command(p.Agent, "--event", evFile, "--workdir", dir)
	cmd.Env = append(append(append(os.Environ(), p.Env...), pr.r.Env...), "CUDA_VISIBLE_DEVICES="+strings.Join(pr.gpus, ","))
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return err
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
		p.mu.Lock()
		pr.code, pr.err = cmd.ProcessState.ExitCode(), nil
		if err != nil && cmd.ProcessState == nil {
			pr.err = err
		}
		p.releaseLocked(pr)
		close(pr.done)
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

// Cancel removes a queued run, or sends the agent SIGTERM (it stops the
// adapter, keeps the outputs and reports the run cancelled) and kills it
// after the grace period.
func (p *ProcessExecutor) Cancel(_ context.Context, runID string) error {
	p.mu.Lock()
	pr, ok := p.runs[runID]
	if !ok {
		p.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownRun, runID)
	}
	if pr.queued {
		for i, q := range p.queue {
			if q == pr {
				p.queue = append(p.queue[:i], p.queue[i+1:]...)
				break
			}
		}
		pr.queued, pr.code = false, 143
		close(pr.done)
		p.mu.Unlock()
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
	syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	go func() {
		select {
		case <-pr.done:
		case <-time.After(p.Grace):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
	return nil
}

// Wait blocks until the run ends and returns the agent's exit code.
func (p *ProcessExecutor) Wait(ctx context.Context, runID string) (int, error) {
	p.mu.Lock()
	pr, ok := p.runs[runID]
	p.mu.Unlock()
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

// Status says whether a run is queued, running or ended, and which GPUs
// it holds.
func (p *ProcessExecutor) Status(runID string) (state string, gpus []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.runs[runID]
	switch {
	case !ok:
		return "unknown", nil
	case pr.queued:
		return "queued", nil
	}
	select {
	case <-pr.done:
		return "ended", pr.gpus
	default:
		return "running", pr.gpus
	}
}
