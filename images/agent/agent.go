package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/weights"
)

// JobSinkPath is where Knative's JobSink mounts the event of a Job.
const JobSinkPath = "/etc/jobsink-event/event"

// Config is what the agent needs besides its run request.
type Config struct {
	Store   objstore.Store
	Sink    *Sink
	WorkDir string
	// Python runs the SDK (default python3); Env is added to the adapter's
	// environment (PYTHONPATH, CUDA_VISIBLE_DEVICES, ...).
	Python string
	Env    []string
	// Grace is how long a cancelled adapter has to stop after SIGTERM
	// before it is killed (default 20 s).
	Grace    time.Duration
	Workers  int           // parallel dataset downloads (default 8)
	Attempts int           // tries per store operation (default 5)
	Progress time.Duration // least time between run.progress events (default 1 s)
	Poll     time.Duration // how often checkpoints are looked for (default 2 s)
	Source   string        // CloudEvent source (default /vp/agent)
	// WeightsBucket holds the imported pretrained weights (default
	// weights.DefaultBucket): a job with pretrained starts from its
	// model's, when there are some.
	WeightsBucket string
	// MaxManifestSize caps the dataset manifest the agent reads (default
	// DefaultMaxManifestSize, 64 MiB).
	MaxManifestSize int64
	Log             zerolog.Logger
}

func (c *Config) defaults() {
	if c.Python == "" {
		c.Python = "python3"
	}
	if c.Grace == 0 {
		c.Grace = 20 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = 8
	}
	if c.Attempts == 0 {
		c.Attempts = 5
	}
	if c.Progress == 0 {
		c.Progress = time.Second
	}
	if c.Poll == 0 {
		c.Poll = 2 * time.Second
	}
	if c.Source == "" {
		c.Source = "/vp/agent"
	}
	if c.WeightsBucket == "" {
		c.WeightsBucket = weights.DefaultBucket
	}
	if c.MaxManifestSize <= 0 {
		c.MaxManifestSize = DefaultMaxManifestSize
	}
}

// LoadRequest reads the run request: the VP_RUN_EVENT variable if set,
// else the file at path ("-" for stdin), as a structured CloudEvent.
func LoadRequest(path string, stdin io.Reader) (event.Event, error) {
	var b []byte
	var err error
	switch v := os.Getenv("VP_RUN_EVENT"); {
	case v != "":
		b = []byte(v)
	case path == "-":
		b, err = io.ReadAll(stdin)
	default:
		b, err = os.ReadFile(path)
	}
	var e event.Event
	if err != nil {
		return e, fmt.Errorf("reading the run request: %w", err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("the run request is not a structured CloudEvent: %w", err)
	}
	return e, nil
}

// Run carries out the run in request and returns its ending, which it has
// also sent as run.finished (exactly once, whatever happened). Cancelling
// ctx (the agent got SIGTERM) stops the adapter, keeps what it wrote, and
// ends the run as cancelled. An error is returned only for a request that
// names no run at all.
func Run(ctx context.Context, c Config, request event.Event) (events.RunFinishedData, error) {
	c.defaults()
	var req events.RunStartedData
	if err := events.DecodeInto(request, &req); err != nil {
		return events.RunFinishedData{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	r := &run{c: c, req: req, in: request, began: time.Now(), log: c.Log.With().Str("run", req.RunID).Str("job", req.Job.ID).Logger()}
	fin := r.do(ctx)
	fin.DurationSeconds = time.Since(r.began).Seconds()
	// A new context: the run may have been cancelled, its ending is not.
	sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := events.Next(request, c.Source, fin)
	if err == nil {
		err = c.Sink.Send(sctx, e)
	}
	if err != nil {
		r.log.Error().Err(err).Msg("sending run.finished")
	}
	r.log.Info().Str("status", fin.Status).Str("reason", fin.Reason).Float64("seconds", fin.DurationSeconds).Msg("run finished")
	return fin, err
}

type run struct {
	c     Config
	req   events.RunStartedData
	in    event.Event
	began time.Time
	log   zerolog.Logger

	mu       sync.Mutex
	logFile  *os.File
	tail     []string
	lastProg map[string]float64
	uploaded map[string]uploadedFile // path -> what was sent while running
}

type uploadedFile struct {
	mod  time.Time
	sum  string
	size int64
}

func (r *run) do(ctx context.Context) (fin events.RunFinishedData) {
	fin = events.RunFinishedData{Job: r.req.Job.ID, RunID: r.req.RunID}
	fail := func(status, reason string) events.RunFinishedData {
		fin.Status, fin.Reason = status, reason
		if status == events.StatusFailed {
			fin.LogTail = r.logTail()
		}
		return fin
	}
	out, err := objstore.ParseURI(r.req.Output)
	if err != nil {
		return fail(events.StatusFailed, err.Error())
	}
	work := r.c.WorkDir
	dataDir, outDir := filepath.Join(work, "dataset"), filepath.Join(work, "output")
	for _, d := range []string{dataDir, outDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(events.StatusFailed, err.Error())
		}
	}
	if r.logFile, err = os.OpenFile(filepath.Join(work, "run.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return fail(events.StatusFailed, err.Error())
	}
	defer r.logFile.Close()
	// Whatever happens from here, the log and the outputs so far are kept.
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		arts, err := r.uploadOutputs(uctx, out, outDir)
		fin.Artifacts = arts
		if err != nil && fin.Status == events.StatusSucceeded {
			fin.Status, fin.Reason = events.StatusFailed, err.Error()
		}
		logURI := out.Join("logs/run.log")
		r.mu.Lock()
		r.logFile.Sync()
		r.mu.Unlock()
		if _, _, err := upload(uctx, r.c.Store, logURI, filepath.Join(work, "run.log"), r.c.Attempts); err != nil {
			r.log.Error().Err(err).Msg("uploading the log")
		} else {
			fin.Log = logURI.String()
		}
	}()

	r.logf("vp-agent: run %s of job %s: %s on %s", r.req.RunID, r.req.Job.ID, r.req.Job.Model, r.req.Job.Dataset.Prefix)
	_, stats, err := Download(ctx, r.c.Store, r.req.Job.Dataset, dataDir, DownloadOptions{
		Workers: r.c.Workers, Attempts: r.c.Attempts, MaxManifestSize: r.c.MaxManifestSize,
	})
	if err != nil {
		if ctx.Err() != nil {
			return fail(events.StatusCancelled, "cancelled while downloading the dataset")
		}
		return fail(events.StatusFailed, "dataset: "+err.Error())
	}
	r.logf("vp-agent: dataset: %d files, %d bytes in %s", stats.Files, stats.Bytes, stats.Duration.Round(time.Millisecond))
	if err := r.restoreCheckpoint(ctx, out, outDir); err != nil {
		return fail(events.StatusFailed, "restoring the checkpoint: "+err.Error())
	}
	weightsPath, err := r.fetchWeights(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fail(events.StatusCancelled, "cancelled while downloading the pretrained weights")
		}
		return fail(events.StatusFailed, "pretrained weights: "+err.Error())
	}
	code, err := r.runAdapter(ctx, out, dataDir, outDir, weightsPath)
	switch {
	case ctx.Err() != nil:
		fin.Status, fin.Reason = events.StatusCancelled, "cancelled or preempted: the adapter was stopped; checkpoints and outputs so far are kept"
	case err != nil:
		return fail(events.StatusFailed, err.Error())
	case code != 0:
		return fail(events.StatusFailed, fmt.Sprintf("adapter exited with code %d", code))
	default:
		fin.Status = events.StatusSucceeded
	}
	fin.Metrics = r.finalMetrics(outDir)
	return fin
}

func (r *run) logf(format string, args ...any) {
	r.writeLog(fmt.Sprintf(format, args...))
}

// writeLog appends a line to the run log and the tail kept for failures.
func (r *run) writeLog(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.logFile != nil {
		fmt.Fprintln(r.logFile, line)
	}
	r.tail = append(r.tail, line)
	if len(r.tail) > 40 {
		r.tail = r.tail[len(r.tail)-40:]
	}
}

func (r *run) logTail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.tail, "\n")
}

func (r *run) restoreCheckpoint(ctx context.Context, out objstore.URI, outDir string) error {
	src := out.Join("checkpoints/last.pt")
	dst := filepath.Join(outDir, "checkpoints", "last.pt")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	err := retry(ctx, r.c.Attempts, 250*time.Millisecond, func() error {
		return fetch(ctx, r.c.Store, src, dst, -1, nil, buf)
	})
	if errors.Is(err, objstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	r.logf("vp-agent: resuming from %s", src)
	return nil
}

// runAdapter starts the SDK, follows its output and stops it on ctx.
func (r *run) runAdapter(ctx context.Context, out objstore.URI, dataDir, outDir, weightsPath string) (int, error) {
	hp, err := json.Marshal(r.req.Job.Hyperparameters)
	if err != nil {
		return 0, err
	}
	// The catalog's adapter and model argument (run.started's adapter);
	// a run.started from elsewhere without one names the framework and
	// model as the adapter and model.
	adapter, model := r.req.Job.Model.Framework, r.req.Job.Model.Name
	if a := r.req.Adapter; a.Name != "" {
		adapter, model = a.Name, a.Model
	}
	args := []string{"-m", "vp_sdk.run", "--adapter", adapter, "--model", model,
		"--dataset", dataDir, "--output", outDir, "--task", r.req.Job.Dataset.Task, "--format", r.req.Job.Dataset.Format,
		"--hyperparameters", string(hp), "--dataset-digest", r.req.Job.Dataset.Digest, "--image", r.req.Image, "--run-id", r.req.RunID}
	if weightsPath != "" {
		args = append(args, "--weights", weightsPath)
	}
	cmd := exec.Command(r.c.Python, args...)
	cmd.Dir = r.c.WorkDir
	cmd.Env = append(append(os.Environ(), "PYTHONUNBUFFERED=1"), r.c.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the adapter: %w", err)
	}
	prog := newProgress(r, r.c.Progress)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			r.writeLog(line)
			prog.line(line)
		}
	}()
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			r.writeLog(sc.Text())
		}
	}()
	stopCk := r.watchCheckpoints(out, outDir)
	done := make(chan error, 1)
	go func() { readers.Wait(); done <- cmd.Wait() }()
	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		r.logf("vp-agent: stopping the adapter (grace %s)", r.c.Grace)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case waitErr = <-done:
		case <-time.After(r.c.Grace):
			r.logf("vp-agent: the adapter did not stop within %s; killing it", r.c.Grace)
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			waitErr = <-done
		}
	}
	stopCk()
	prog.flush()
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, waitErr
}

// watchCheckpoints uploads output/checkpoints/last.pt whenever it changes,
// so a preempted run restarted with the same run id resumes from it.
func (r *run) watchCheckpoints(out objstore.URI, outDir string) (stop func()) {
	p := filepath.Join(outDir, "checkpoints", "last.pt")
	done := make(chan struct{})
	finished := make(chan struct{})
	var last time.Time
	check := func() {
		fi, err := os.Stat(p)
		if err != nil || !fi.ModTime().After(last) {
			return
		}
		last = fi.ModTime()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		sum, size, err := upload(ctx, r.c.Store, out.Join("checkpoints/last.pt"), p, r.c.Attempts)
		if err != nil {
			r.log.Warn().Err(err).Msg("uploading checkpoint")
			return
		}
		r.mu.Lock()
		if r.uploaded == nil {
			r.uploaded = map[string]uploadedFile{}
		}
		r.uploaded[p] = uploadedFile{mod: fi.ModTime(), sum: sum, size: size}
		r.mu.Unlock()
		r.logf("vp-agent: checkpoint uploaded to %s", out.Join("checkpoints/last.pt"))
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(r.c.Poll)
		defer t.Stop()
		for {
			select {
			case <-done:
				check()
				return
			case <-t.C:
				check()
			}
		}
	}()
	return func() { close(done); <-finished }
}

// uploadOutputs puts every file of the output directory under out, with
// its sha256.
func (r *run) uploadOutputs(ctx context.Context, out objstore.URI, outDir string) ([]events.Artifact, error) {
	var files []string
	filepath.Walk(outDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasSuffix(p, ".tmp") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	var arts []events.Artifact
	var errs []error
	for _, p := range files {
		rel, _ := filepath.Rel(outDir, p)
		rel = filepath.ToSlash(rel)
		dst := out.Join(rel)
		r.mu.Lock()
		done, ok := r.uploaded[p]
		r.mu.Unlock()
		if fi, err := os.Stat(p); ok && err == nil && fi.ModTime().Equal(done.mod) && fi.Size() == done.size {
			arts = append(arts, events.Artifact{Name: rel, URI: dst.String(), SHA256: done.sum, Size: done.size})
			continue // the checkpoint watcher sent this very file
		}
		sum, size, err := upload(ctx, r.c.Store, dst, p, r.c.Attempts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		arts = append(arts, events.Artifact{Name: rel, URI: dst.String(), SHA256: sum, Size: size})
	}
	return arts, errors.Join(errs...)
}

// finalMetrics are metrics.json's (a null, a value that was not finite,
// left out, as in the protocol's lines), or the latest metric line's.
func (r *run) finalMetrics(outDir string) map[string]float64 {
	b, err := os.ReadFile(filepath.Join(outDir, "metrics.json"))
	if err == nil {
		var m map[string]*float64
		if json.Unmarshal(b, &m) == nil {
			out := make(map[string]float64, len(m))
			for k, v := range m {
				if v != nil {
					out[k] = *v
				}
			}
			return out
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastProg
}
