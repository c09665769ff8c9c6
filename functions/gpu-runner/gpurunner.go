package gpurunner

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/functions/gpu-runner/executor"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
)

// FuncYAML is the function's func.yaml.
//
//go:embed func.yaml
var FuncYAML []byte

// Defaults of the settings.
const (
	DefaultRunsBucket = "runs"
	// Source is the CloudEvents source of the events the function makes.
	Source = executor.DefaultSource
	// SelfAgent, as VP_AGENT, runs this binary's agent subcommand
	// (SelfAgentArgs) as the agent.
	SelfAgent = "self"
	// AgentBinary is the agent looked for on PATH when VP_AGENT is unset.
	AgentBinary = "vp-agent"
)

// SelfAgentArgs run the agent in a binary that has it as a subcommand
// (vp agent).
var SelfAgentArgs = []string{"agent"}

// agentSettings are the settings of the function that the run agent gets
// in its environment: the object store (as objstore reads it) and the
// broker's ingress.
var agentSettings = []string{
	"VP_S3_ENDPOINT", "VP_S3_ACCESS_KEY", "VP_S3_SECRET_KEY", "VP_S3_SESSION_TOKEN", "VP_S3_SECURE",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "K_SINK",
}

// hostAgentSettings reach the agent only when it runs on this host (the
// process executor): the Python that runs the training SDK. An image has
// its own.
var hostAgentSettings = []string{"VP_PYTHON", "PYTHONPATH"}

// Results of the runs counter.
const (
	resultLaunched       = "launched"        // run.started answered
	resultDuplicate      = "duplicate"       // the ledger or the executor has the run already
	resultResumed        = "resumed"         // an interrupted run relaunched at start
	resultCancelledFirst = "cancelled_first" // a job cancelled before its image was built: not launched
	resultFailed         = "failed"          // the run cannot be launched: run.finished failed answered
	resultRetried        = "retried"         // a launch failure that may pass: the broker redelivers
	resultCancelled      = "cancelled"       // job.cancelled stopped a run
	resultNothingToStop  = "nothing_to_stop" // job.cancelled of a run the executor does not have
)

// rememberCancels bounds the job ids cancelled before their run existed
// that the function keeps in memory (the ledger keeps them all).
const rememberCancels = 4096

// Function launches and cancels runs.
type Function struct {
	send         sender.Interface
	exec         executor.Executor
	reason       string
	chooseOpts   []executor.Option
	selfAgent    bool
	store        objstore.Store
	ledgerBucket string
	runsBucket   string
	log          *zerolog.Logger
	ledger       *ledger.Ledger
	env          []string
	runs         *prometheus.CounterVec
	reg          prometheus.Registerer

	mu        sync.Mutex
	cancelled map[string]bool // jobs cancelled before their run existed
	order     []string        // the ids in cancelled, oldest first
}

// Option configures the function.
type Option func(*Function)

// WithExecutor launches runs with e, chosen for reason (carried in every
// run.started), instead of the executor VP_EXECUTOR chooses.
func WithExecutor(e executor.Executor, reason string) Option {
	return func(f *Function) { f.exec, f.reason = e, reason }
}

// WithChooseOptions passes opts to executor.Choose: the kubernetes
// executor (kubernetes.InClusterOption) in a binary that links it.
func WithChooseOptions(opts ...executor.Option) Option {
	return func(f *Function) { f.chooseOpts = append(f.chooseOpts, opts...) }
}

// WithSelfAgent says that this binary has the agent as its subcommand
// SelfAgentArgs (vp agent): when VP_AGENT is unset and no vp-agent is on
// PATH, the process executor runs this binary as the agent.
func WithSelfAgent() Option { return func(f *Function) { f.selfAgent = true } }

// WithStore reads the ledger in store instead of the one VP_S3_* names
// (the agent still gets VP_S3_*).
func WithStore(s objstore.Store) Option { return func(f *Function) { f.store = s } }

// WithLogger logs to l instead of the logger VP_LOG_* describe.
func WithLogger(l zerolog.Logger) Option { return func(f *Function) { f.log = &l } }

// WithMetrics registers the function's metrics with r.
func WithMetrics(r prometheus.Registerer) Option { return func(f *Function) { f.reg = r } }

// New makes the function; Start configures what no option set.
func New(opts ...Option) *Function {
	f := &Function{cancelled: map[string]bool{}}
	f.chooseOpts = append(f.chooseOpts, defaultChooseOptions...)
	for _, o := range opts {
		o(f)
	}
	f.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vp_gpu_runner_runs_total",
		Help: "Runs handled by the gpu-runner, by executor and result: launched, duplicate, cancelled_first, failed, retried, cancelled, nothing_to_stop.",
	}, []string{"executor", "result"})
	if f.reg != nil {
		f.reg.MustRegister(f.runs)
	}
	return f
}

// defaultChooseOptions are what a build adds to every Choose (the
// kubernetes executor under the kubernetes build tag).
var defaultChooseOptions []executor.Option

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Start reads the settings and chooses the executor:
//
//   - VP_S3_ENDPOINT, VP_S3_ACCESS_KEY, VP_S3_SECRET_KEY, VP_S3_SECURE
//     (VP_S3_SESSION_TOKEN): the object store, where the ledger is read
//     and where the agent reads datasets and writes outputs;
//   - K_SINK (required): the broker's ingress, where the agent sends
//     run.progress and run.finished;
//   - VP_LEDGER_BUCKET (default platform): the job ledger, read so that a
//     job that started, ended or was cancelled is not launched again;
//   - VP_RUNS_BUCKET (default runs): runs write under s3://BUCKET/<run id>/;
//   - VP_EXECUTOR: auto (default), process, docker or kubernetes;
//   - for the docker executor: DOCKER_HOST (the engine's address,
//     unix:///path or tcp://host:port; default
//     unix:///var/run/docker.sock), VP_DOCKER_NETWORK (the network the
//     runs' containers join; default host; under docker-compose the
//     compose network), VP_DOCKER_PULL_HOSTS (FROM=TO registry hosts,
//     comma-separated: an image named on the registry as the functions
//     reach it, registry:5000, is pulled and run from the engine's view
//     of it, 127.0.0.1:5000), VP_DOCKER_GPUS (the engine host's GPU ids,
//     comma-separated, where this process cannot run nvidia-smi: in a
//     container; default those nvidia-smi lists), VP_DOCKER_REMOVE_AFTER
//     (how long an ended run's container is kept, for its logs, before
//     it is removed; default 1m);
//   - for the process executor: VP_AGENT (the agent command: a path or a
//     name on PATH, with arguments if any, such as "/usr/local/bin/vp
//     agent", or self for this binary's agent subcommand; default vp-agent
//     on PATH, else self in a binary that has it), VP_WORK_DIR
//     (runs work in VP_WORK_DIR/<run id>; default vp-gpu-runner under the
//     temporary directory), VP_MAX_RUNS (runs at once, the rest queued in
//     order; default one per GPU, or 1 without GPUs), VP_PYTHON and
//     PYTHONPATH (the Python of the training SDK on this host);
//   - VP_LOG_FORMAT and VP_LOG_LEVEL.
//
// The agent gets VP_S3_* (AWS_* where set) and K_SINK in its environment.
func (f *Function) Start(ctx context.Context, cfg map[string]string) error {
	c := fn.Config(cfg)
	if err := c.SetLogger(&f.log, "gpu-runner"); err != nil {
		return err
	}
	if f.store == nil {
		s, err := c.Store()
		if err != nil {
			return err
		}
		f.store = s
	} else if _, err := c.Store(); err != nil {
		return fmt.Errorf("the run agent's object store: %w", err)
	}
	send, err := c.Sender() // where the agent reports, and resume ends a cancelled run
	if err != nil {
		return err
	}
	f.send = send
	f.ledgerBucket = c.Or("VP_LEDGER_BUCKET", ledger.DefaultBucket)
	f.runsBucket = c.Or("VP_RUNS_BUCKET", DefaultRunsBucket)
	for _, b := range []struct{ name, value string }{{"VP_LEDGER_BUCKET", f.ledgerBucket}, {"VP_RUNS_BUCKET", f.runsBucket}} {
		if !bucketRE.MatchString(b.value) {
			return fmt.Errorf("%s: %q is not a bucket name", b.name, b.value)
		}
	}
	f.env = nil
	for _, name := range agentSettings {
		if v := c.Get(name); v != "" {
			f.env = append(f.env, name+"="+v)
		}
	}
	if f.exec == nil {
		e, reason, err := f.choose(ctx, c)
		if err != nil {
			return err
		}
		f.exec, f.reason = e, reason
	}
	f.ledger = ledger.New(f.store, f.ledgerBucket)
	ev := f.log.Info().Str("executor", f.exec.Name()).Str("reason", f.reason).Str("ledger", f.ledgerBucket).Str("runs", f.runsBucket)
	if p, ok := f.exec.(*executor.ProcessExecutor); ok {
		ev = ev.Str("agent", strings.Join(append([]string{p.Agent}, p.AgentArgs...), " ")).Str("workDir", p.WorkDir).Int("maxRuns", p.Slots).Strs("gpus", p.GPUs())
	}
	if d, ok := f.exec.(*executor.DockerExecutor); ok {
		ev = ev.Str("dockerHost", d.Host).Str("network", d.Network).Interface("pullHosts", d.PullHosts).Strs("gpus", d.Devices)
	}
	ev.Msg("gpu-runner started")
	if d, ok := f.exec.(*executor.DockerExecutor); ok {
		d.Start() // removes the containers of ended runs until Stop
	}
	// The store may come up after the function (vp up starts MinIO once
	// dataset-intake answers): relaunch the interrupted runs as soon as the
	// ledger can be read, trying for up to two minutes.
	go func() {
		rctx := context.WithoutCancel(ctx)
		var err error
		for i := 0; i < 120; i++ {
			if err = f.resume(rctx); err == nil {
				return
			}
			time.Sleep(time.Second)
		}
		f.log.Error().Err(err).Msg("relaunching interrupted runs")
	}()
	return nil
}

// choose picks the executor VP_EXECUTOR names.
func (f *Function) choose(ctx context.Context, c fn.Config) (executor.Executor, string, error) {
	maxRuns, err := c.Int("VP_MAX_RUNS", 0)
	if err != nil {
		return nil, "", err
	}
	if c.Get("VP_MAX_RUNS") != "" && maxRuns < 1 {
		return nil, "", fmt.Errorf("VP_MAX_RUNS: %q: at least 1 run at once", c.Get("VP_MAX_RUNS"))
	}
	workDir := c.Or("VP_WORK_DIR", filepath.Join(os.TempDir(), "vp-gpu-runner"))
	log := *f.log
	process := func() (*executor.ProcessExecutor, error) {
		agent, args, err := AgentCommand(c.Get("VP_AGENT"), f.selfAgent)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(workDir, 0o755); err != nil {
			return nil, fmt.Errorf("VP_WORK_DIR: %w", err)
		}
		p, err := executor.NewProcess(ctx, agent, workDir, nil, log)
		if err != nil {
			return nil, err
		}
		p.AgentArgs = args
		if maxRuns > 0 {
			p.Slots = maxRuns
		}
		p.Source = Source
		for _, name := range hostAgentSettings {
			if v := c.Get(name); v != "" {
				p.Env = append(p.Env, name+"="+v)
			}
		}
		return p, nil
	}
	removeAfter, err := c.Duration("VP_DOCKER_REMOVE_AFTER", executor.DefaultRemoveAfter)
	if err != nil {
		return nil, "", err
	}
	if removeAfter == 0 {
		return nil, "", fmt.Errorf("VP_DOCKER_REMOVE_AFTER: %q: want a duration above 0 (1s, 1m)", c.Get("VP_DOCKER_REMOVE_AFTER"))
	}
	docker := &executor.DockerExecutor{Host: c.Get("DOCKER_HOST"), Network: c.Get("VP_DOCKER_NETWORK"), Log: log, Source: Source, RemoveAfter: removeAfter}
	if hosts, err := executor.ParsePullHosts(c.Get("VP_DOCKER_PULL_HOSTS")); err != nil {
		return nil, "", fmt.Errorf("VP_DOCKER_PULL_HOSTS: %w", err)
	} else if len(hosts) > 0 {
		docker.PullHosts = hosts
	}
	if c.Get("VP_DOCKER") != "" {
		log.Warn().Msg("VP_DOCKER is ignored: the docker executor speaks the Engine API (DOCKER_HOST names the engine)")
	}
	if ids := c.Get("VP_DOCKER_GPUS"); ids != "" {
		for _, id := range strings.Split(ids, ",") {
			if id = strings.TrimSpace(id); id != "" {
				docker.Devices = append(docker.Devices, id)
			}
		}
	} else if devices, err := executor.NvidiaSMI(ctx); err == nil {
		docker.Devices = devices // each run gets devices of its own
	}
	mode := c.Or("VP_EXECUTOR", "auto")
	e, reason, err := executor.Choose(ctx, mode, docker, process, f.chooseOpts...)
	if err != nil {
		return nil, "", fmt.Errorf("VP_EXECUTOR=%s: %w", mode, err)
	}
	return e, reason, nil
}

// AgentCommand is the agent the process executor runs for setting (the
// value of VP_AGENT): a path or a name on PATH, optionally followed by
// arguments, split on blanks ("/usr/local/bin/vp agent"); SelfAgent for
// this binary's agent subcommand; unset for vp-agent on PATH, else this
// binary when self says it has the subcommand (WithSelfAgent), else
// ErrNoAgent. It returns the command and the arguments before the agent's
// flags.
func AgentCommand(setting string, self bool) (string, []string, error) {
	selfAgent := func() (string, []string, error) {
		exe, err := os.Executable()
		if err != nil {
			return "", nil, fmt.Errorf("VP_AGENT=self: finding this binary: %w", err)
		}
		return exe, append([]string(nil), SelfAgentArgs...), nil
	}
	switch setting {
	case SelfAgent:
		return selfAgent()
	case "":
		if p, err := exec.LookPath(AgentBinary); err == nil {
			return p, nil, nil
		}
		if self {
			return selfAgent()
		}
		return "", nil, ErrNoAgent
	}
	fields := strings.Fields(setting)
	if len(fields) == 0 {
		return "", nil, fmt.Errorf("VP_AGENT: %q names no command", setting)
	}
	p, err := exec.LookPath(fields[0])
	if err != nil {
		return "", nil, fmt.Errorf("VP_AGENT: %w", err)
	}
	if len(fields) == 1 {
		return p, nil, nil
	}
	return p, fields[1:], nil
}

// Stop leaves Jobs and containers running (they report by event; the
// docker executor removes the containers of its runs that have ended);
// the process executor's runs are agents of this host, which goes down
// with the function: they are interrupted without an ending, and the next
// Start relaunches them (each resumes from its last checkpoint).
func (f *Function) Stop(ctx context.Context) error {
	if p, ok := f.exec.(*executor.ProcessExecutor); ok {
		p.Shutdown()
	}
	if d, ok := f.exec.(*executor.DockerExecutor); ok {
		return d.Close(ctx)
	}
	return nil
}

// resume relaunches the runs of this host's process executor that the
// ledger shows started and not ended: the runs an earlier instance's Stop
// interrupted, or that were under way when it died. A run still under way
// in an agent that outlived its instance would run twice, so the process
// executor's runs are always interrupted by Stop.
func (f *Function) resume(ctx context.Context) error {
	p, ok := f.exec.(*executor.ProcessExecutor)
	if !ok {
		return nil
	}
	jobs, err := f.ledger.Jobs(ctx)
	if err != nil {
		return fmt.Errorf("listing the ledger's jobs: %w", err)
	}
	for _, id := range jobs {
		s, err := f.ledger.Job(ctx, id)
		if err != nil {
			return err
		}
		if !s.Started || ledger.Terminal(s.State) || s.Executor != executor.Process || s.RunID == "" {
			continue
		}
		evs, err := f.ledger.Events(ctx, id)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if events.Type(e.Type()) != events.RunStarted {
				continue
			}
			log := f.log.With().Str("job", id).Str("run", s.RunID).Logger()
			if s.Cancelled {
				// Cancelled while it was interrupted: end it as cancelled.
				fin, err := executor.Ending(executor.Run{ID: s.RunID, Event: e}, Source, events.StatusCancelled, "cancelled while the gpu-runner was down")
				if err == nil {
					err = f.send.Send(ctx, fin)
				}
				if err != nil {
					return fmt.Errorf("ending cancelled run %s: %w", s.RunID, err)
				}
				log.Info().Msg("an interrupted run was cancelled meanwhile: ended as cancelled")
				break
			}
			var d events.RunStartedData
			if err := events.DecodeInto(e, &d); err != nil {
				return fmt.Errorf("decoding the run.started of %s: %w", id, err)
			}
			r := executor.Run{ID: s.RunID, Event: e, Image: d.Image, GPUs: d.Job.Resources.GPUs, CPU: d.Job.Resources.CPU,
				Memory: d.Job.Resources.Memory, Env: append([]string(nil), f.env...)}
			if err := p.Launch(ctx, r); err != nil {
				log.Error().Err(err).Msg("relaunching an interrupted run")
				break
			}
			f.runs.WithLabelValues(p.Name(), resultResumed).Inc()
			log.Info().Msg("interrupted run relaunched: it resumes from its last checkpoint")
			break
		}
	}
	return nil
}

// Ready once started.
func (f *Function) Ready(context.Context) (bool, error) { return f.ledger != nil, nil }

// Executor is the executor runs are launched with (nil before Start).
func (f *Function) Executor() executor.Executor { return f.exec }

// Reason is why the executor was chosen.
func (f *Function) Reason() string { return f.reason }

// RunID is the id of a job's run: "run-" and the job id's hex part, so a
// job has one run and a redelivered image.built names the same run.
func RunID(jobID string) (string, error) {
	hex, ok := strings.CutPrefix(jobID, "job-")
	if !ok || len(hex) != 20 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q: %w", jobID, ErrNotAJob)
	}
	return "run-" + hex, nil
}

// Handle launches the run of an image.built's job and answers run.started
// (or run.finished failed when the run cannot be launched), or cancels the
// run of a job.cancelled's job and answers nothing. An invalid event is
// refused; a ledger or an executor that cannot be reached is a failure
// the broker retries. Other events are acknowledged and ignored.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if f.ledger == nil {
		return nil, fn.Retry(errors.New("gpu-runner not started"))
	}
	switch events.Type(e.Type()) {
	case events.ImageBuilt:
		return f.built(ctx, e)
	case events.JobCancelled:
		return nil, f.cancel(ctx, e)
	}
	return nil, nil
}

// built launches the run of an image.built's job.
func (f *Function) built(ctx context.Context, e event.Event) (*event.Event, error) {
	var d events.ImageBuiltData
	if err := events.DecodeInto(e, &d); err != nil {
		f.log.Warn().Err(err).Str("id", e.ID()).Msg("refusing an invalid image.built")
		return nil, fn.Invalid(err)
	}
	job := d.Request
	if job.ID != d.Job {
		return nil, fn.Refuse("image.built of job %s carries job %s", d.Job, job.ID)
	}
	runID, err := RunID(job.ID)
	if err != nil {
		return nil, fn.Refuse("%v", err)
	}
	log := f.log.With().Str("job", job.ID).Str("run", runID).Logger()
	name := f.exec.Name()
	if f.cancelledFirst(job.ID) {
		f.runs.WithLabelValues(name, resultCancelledFirst).Inc()
		log.Info().Msg("not launched: the job was cancelled")
		return nil, nil
	}
	s, err := f.ledger.Job(ctx, job.ID)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
	case err != nil:
		f.runs.WithLabelValues(name, resultRetried).Inc()
		log.Error().Err(err).Msg("reading the job's ledger")
		return nil, fn.Retry(fmt.Errorf("reading the ledger of job %s: %w", job.ID, err))
	case s.Cancelled:
		f.runs.WithLabelValues(name, resultCancelledFirst).Inc()
		log.Info().Str("state", s.State).Msg("not launched: the ledger says the job was cancelled")
		return nil, nil
	case s.Started || ledger.Terminal(s.State):
		f.runs.WithLabelValues(name, resultDuplicate).Inc()
		log.Info().Str("state", s.State).Bool("started", s.Started).Msg("not launched: the ledger says the job's run started or the job ended")
		return nil, nil
	}
	if want := job.Resources.Executor; want != "" && want != "auto" && want != name {
		return f.failed(e, job.ID, runID, fmt.Sprintf("the job asks for the %s executor; this gpu-runner launches runs with the %s executor (%s)", want, name, f.reason), log)
	}
	started, err := events.Next(e, Source, events.RunStartedData{
		Job: job, RunID: runID, Image: d.Reference, Executor: name, Reason: f.reason, Adapter: d.Adapter,
		Output: "s3://" + f.runsBucket + "/" + runID + "/",
	})
	if err != nil {
		return nil, fn.Refuse("making run.started: %v", err)
	}
	result := resultLaunched
	if state := f.runState(runID); state != "" && state != "unknown" {
		result = resultDuplicate // launched already: Launch does nothing, the answer is the same
	}
	r := executor.Run{
		ID: runID, Event: started, Image: d.Reference, GPUs: job.Resources.GPUs,
		CPU: job.Resources.CPU, Memory: job.Resources.Memory, Env: append([]string(nil), f.env...),
	}
	if err := f.exec.Launch(ctx, r); err != nil {
		if permanent(err) {
			return f.failed(e, job.ID, runID, "launching the run: "+err.Error(), log)
		}
		f.runs.WithLabelValues(name, resultRetried).Inc()
		log.Error().Err(err).Msg("launching the run")
		return nil, fn.Retry(fmt.Errorf("launching run %s: %w", runID, err))
	}
	f.runs.WithLabelValues(name, result).Inc()
	msg := "run launched"
	if result == resultDuplicate {
		msg = "run launched already: run.started answered again"
	}
	log.Info().Str("image", d.Reference).Int("gpus", job.Resources.GPUs).Str("result", result).Msg(msg)
	return &started, nil
}

// runState is the state the executor reports for a run (queued, running,
// ended, unknown), or "" when it does not say (only the process executor
// holds its runs in memory).
func (f *Function) runState(runID string) string {
	if st, ok := f.exec.(interface {
		Status(string) (string, []string)
	}); ok {
		state, _ := st.Status(runID)
		return state
	}
	return ""
}

// permanent reports whether a launch failure will fail again, however
// often it is retried.
func permanent(err error) bool {
	return errors.Is(err, executor.ErrNoGPUs) || errors.Is(err, executor.ErrInvalidRun)
}

// failed answers run.finished failed for a run that cannot be launched.
func (f *Function) failed(in event.Event, jobID, runID, reason string, log zerolog.Logger) (*event.Event, error) {
	fin, err := events.Next(in, Source, events.RunFinishedData{Job: jobID, RunID: runID, Status: events.StatusFailed, Reason: reason})
	if err != nil {
		return nil, fn.Refuse("making run.finished: %v", err)
	}
	f.runs.WithLabelValues(f.exec.Name(), resultFailed).Inc()
	log.Warn().Str("reason", reason).Msg("run not launched: failed")
	return &fin, nil
}

// cancel cancels the run of a job.cancelled's job.
func (f *Function) cancel(ctx context.Context, e event.Event) error {
	var d events.JobCancelledData
	if err := events.DecodeInto(e, &d); err != nil {
		f.log.Warn().Err(err).Str("id", e.ID()).Msg("refusing an invalid job.cancelled")
		return fn.Invalid(err)
	}
	runID, err := RunID(d.Job)
	if err != nil {
		return fn.Refuse("%v", err)
	}
	log := f.log.With().Str("job", d.Job).Str("run", runID).Logger()
	name := f.exec.Name()
	if f.runState(runID) == "ended" {
		f.runs.WithLabelValues(name, resultNothingToStop).Inc()
		log.Info().Msg("cancel: the run has ended already")
		return nil
	}
	err = f.exec.Cancel(ctx, runID)
	switch {
	case errors.Is(err, executor.ErrUnknownRun):
		// Not launched (yet): remember it, as the ledger does, so that
		// the job's image.built launches nothing.
		f.rememberCancel(d.Job)
		f.runs.WithLabelValues(name, resultNothingToStop).Inc()
		log.Info().Msg("cancel: the executor has no such run; it will not be launched")
		return nil
	case err != nil:
		f.runs.WithLabelValues(name, resultRetried).Inc()
		log.Error().Err(err).Msg("cancelling the run")
		return fn.Retry(fmt.Errorf("cancelling run %s: %w", runID, err))
	}
	f.runs.WithLabelValues(name, resultCancelled).Inc()
	log.Info().Str("reason", d.Reason).Msg("run cancelled")
	return nil
}

func (f *Function) rememberCancel(jobID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancelled[jobID] {
		return
	}
	f.cancelled[jobID] = true
	f.order = append(f.order, jobID)
	for len(f.order) > rememberCancels {
		delete(f.cancelled, f.order[0])
		f.order = f.order[1:]
	}
}

func (f *Function) cancelledFirst(jobID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancelled[jobID]
}
