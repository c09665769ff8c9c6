package imagebuilder

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/images/assemble"
	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/publish"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/weights"
	"github.com/vision-platform/vp/registry"
)

// FuncYAML is the function's func.yaml.
//
//go:embed func.yaml
var FuncYAML []byte

// Source is the CloudEvents source of the function's events.
const Source = "/vp/image-builder"

// Reasons of image.failed.
const (
	ReasonUnknownModel     = "UnknownModel"
	ReasonModelUnavailable = "ModelUnavailable"
	ReasonInvalidJob       = "InvalidJob"
	ReasonBuildFailed      = "BuildFailed"
	// ReasonNoWeights: the job asks for pretrained weights, its model has
	// none imported, and the model hub is not reachable.
	ReasonNoWeights = "NoWeights"
)

// Function builds framework images for jobs.
type Function struct {
	specsDir, cacheDir, repo string
	insecure                 bool
	catalog                  *registry.Catalog
	send                     sender.Interface
	log                      *zerolog.Logger
	replyWithin, timeout     time.Duration
	reg                      prometheus.Registerer
	started                  bool
	// weights is where imported pretrained weights are looked up (nil: no
	// check); hubReachable says the model hubs can be reached instead.
	weights       objstore.Getter
	weightsBucket string
	hubReachable  bool

	mu      sync.Mutex
	known   map[string]record  // spec → its last build
	flights map[string]*flight // spec → the build under way
	build   sync.Mutex         // one build at a time on this instance
	bg      sync.WaitGroup
	stop    context.CancelFunc
	ctx     context.Context

	handled *prometheus.CounterVec
	builds  *prometheus.HistogramVec
}

// record is what the function remembers of a spec's last build.
type record struct {
	Stamp       string         `json:"stamp"`
	Reference   string         `json:"reference"`
	Layers      []events.Layer `json:"layers"`
	BytesPushed int64          `json:"bytesPushed"`
	BytesReused int64          `json:"bytesReused"`
}

// specError is a spec that cannot be read: a build would fail the same
// way until someone fixes it, so the job gets image.failed, not a retry.
type specError struct{ err error }

func (e *specError) Error() string { return e.err.Error() }
func (e *specError) Unwrap() error { return e.err }

// flight is one build and the jobs waiting on it.
type flight struct {
	done    chan struct{}
	rec     record
	cacheHt bool
	elapsed time.Duration
	err     error
	waiters []event.Event // jobs answered at once, to report to by event
}

// Option configures the function.
type Option func(*Function)

// WithSpecs reads the image specs from dir (default VP_IMAGE_SPECS).
func WithSpecs(dir string) Option { return func(f *Function) { f.specsDir = dir } }

// WithCache keeps layers in dir (default VP_IMAGE_CACHE).
func WithCache(dir string) Option { return func(f *Function) { f.cacheDir = dir } }

// WithRegistry pushes to repo, HOST[:PORT]/PATH (default VP_REGISTRY).
func WithRegistry(repo string) Option { return func(f *Function) { f.repo = repo } }

// WithCatalog resolves models in c (default registry.Default()).
func WithCatalog(c *registry.Catalog) Option { return func(f *Function) { f.catalog = c } }

// WithSender reports builds that outlast the reply through s (default
// K_SINK).
func WithSender(s sender.Interface) Option { return func(f *Function) { f.send = s } }

// WithLogger logs to l.
func WithLogger(l zerolog.Logger) Option { return func(f *Function) { f.log = &l } }

// WithReplyWithin answers a build that takes longer than d at once and
// reports it by event (default VP_REPLY_WITHIN, 20 s).
func WithReplyWithin(d time.Duration) Option { return func(f *Function) { f.replyWithin = d } }

// WithStore looks up imported pretrained weights in s (default: the
// store VP_S3_ENDPOINT names, when set; without one no job is refused for
// its weights).
func WithStore(s objstore.Getter) Option { return func(f *Function) { f.weights = s } }

// WithMetrics registers the function's metrics with r.
func WithMetrics(r prometheus.Registerer) Option { return func(f *Function) { f.reg = r } }

// New makes the function; Start configures what no option set.
func New(opts ...Option) *Function {
	f := &Function{known: map[string]record{}, flights: map[string]*flight{}}
	for _, o := range opts {
		o(f)
	}
	f.handled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vp_image_builder_jobs_total", Help: "Jobs handled by the image-builder, by outcome.",
	}, []string{"outcome"})
	f.builds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vp_image_builder_build_seconds", Help: "Image builds, by spec and whether every layer came from the cache.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
	}, []string{"spec", "cache_hit"})
	if f.reg != nil {
		f.reg.MustRegister(f.handled, f.builds)
	}
	return f
}

// Start reads the settings: VP_REGISTRY (required: where images go),
// VP_IMAGE_SPECS (the specs' folder), VP_IMAGE_CACHE (default
// ~/.cache/vision-platform/images), VP_REGISTRY_INSECURE (plain HTTP;
// loopback registries always are), VP_REPLY_WITHIN (20s), VP_BUILD_TIMEOUT
// (60m), K_SINK (for builds that outlast the reply), VP_LOG_*; the imported
// pretrained weights' store VP_S3_* (optional), VP_WEIGHTS_BUCKET (weights)
// and VP_MODEL_HUB_REACHABLE (false: a job asking for pretrained weights
// its model has none imported of is refused). Jobs left waiting by an
// earlier instance are taken up again.
func (f *Function) Start(ctx context.Context, cfg map[string]string) error {
	c := fn.Config(cfg)
	if err := c.SetLogger(&f.log, "image-builder"); err != nil {
		return err
	}
	if f.repo == "" {
		f.repo = c.Get("VP_REGISTRY")
	}
	if f.repo == "" {
		return errors.New("VP_REGISTRY is required: the repository images are pushed to, HOST[:PORT]/PATH")
	}
	if _, err := name.NewRepository(f.repo + "/probe"); err != nil {
		return fmt.Errorf("VP_REGISTRY %q: %w", f.repo, err)
	}
	if f.specsDir == "" {
		f.specsDir = c.Get("VP_IMAGE_SPECS")
	}
	if f.specsDir == "" {
		return errors.New("VP_IMAGE_SPECS is required: the folder of image specs (images/frameworks)")
	}
	if specs, err := imagespec.LoadDir(f.specsDir); err != nil || len(specs) == 0 {
		if err == nil {
			err = errors.New("no image specs there")
		}
		return fmt.Errorf("VP_IMAGE_SPECS %s: %w", f.specsDir, err)
	}
	if f.cacheDir == "" {
		f.cacheDir = c.Get("VP_IMAGE_CACHE")
	}
	if f.cacheDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("VP_IMAGE_CACHE is not set and there is no home folder: %w", err)
		}
		f.cacheDir = filepath.Join(home, ".cache", "vision-platform", "images")
	}
	var err error
	if f.insecure, err = c.Bool("VP_REGISTRY_INSECURE", false); err != nil {
		return err
	}
	if f.replyWithin == 0 {
		if f.replyWithin, err = c.Duration("VP_REPLY_WITHIN", 20*time.Second); err != nil {
			return err
		}
	}
	if f.timeout, err = c.Duration("VP_BUILD_TIMEOUT", 60*time.Minute); err != nil {
		return err
	}
	if f.catalog == nil {
		f.catalog = registry.Default()
	}
	if f.weights == nil && c.Get("VP_S3_ENDPOINT") != "" {
		if f.weights, err = c.Store(); err != nil {
			return err
		}
	}
	f.weightsBucket = c.Or("VP_WEIGHTS_BUCKET", weights.DefaultBucket)
	if err := weights.CheckBucket(f.weightsBucket); err != nil {
		return fmt.Errorf("VP_WEIGHTS_BUCKET: %w", err)
	}
	if f.hubReachable, err = c.Bool("VP_MODEL_HUB_REACHABLE", false); err != nil {
		return err
	}
	if f.send == nil {
		if f.send, err = c.Sender(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(f.pendingDir(), 0o755); err != nil {
		return fmt.Errorf("VP_IMAGE_CACHE: %w", err)
	}
	if b, err := os.ReadFile(f.recordsFile()); err == nil {
		if err := json.Unmarshal(b, &f.known); err != nil {
			f.log.Warn().Err(err).Msg("forgetting an unreadable record of earlier builds")
			f.known = map[string]record{}
		}
	}
	f.ctx, f.stop = context.WithCancel(context.WithoutCancel(ctx))
	f.started = true
	f.resume()
	return nil
}

// Stop cancels the builds under way and waits for them; their jobs stay on
// disk for the next start.
func (f *Function) Stop(context.Context) error {
	if f.stop != nil {
		f.stop()
	}
	f.bg.Wait()
	return nil
}

// Ready once started.
func (f *Function) Ready(context.Context) (bool, error) { return f.started, nil }

func (f *Function) pendingDir() string { return filepath.Join(f.cacheDir, "image-builder", "pending") }
func (f *Function) recordsFile() string {
	return filepath.Join(f.cacheDir, "image-builder", "builds.json")
}

// Handle answers job.requested with image.built or image.failed.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if !f.started {
		return nil, fn.Retry(errors.New("image-builder not started"))
	}
	var job events.JobRequestedData
	if err := events.DecodeInto(e, &job); err != nil {
		f.handled.WithLabelValues("refused").Inc()
		return nil, fn.Invalid(err)
	}
	log := f.log.With().Str("jobid", job.ID).Str("model", job.Model.String()).Logger()
	m, err := f.catalog.Lookup(job.Model.Framework, job.Model.Name)
	if err != nil {
		return f.failed(e, job, job.Model.Framework, ReasonUnknownModel, err.Error())
	}
	if probs := f.catalog.CheckJob(job); len(probs) > 0 {
		reason := ReasonInvalidJob
		if !m.Ready() {
			reason = ReasonModelUnavailable
		}
		msgs := make([]string, len(probs))
		for i, p := range probs {
			msgs[i] = p.Error()
		}
		return f.failed(e, job, m.ImageSpec(), reason, strings.Join(msgs, "; "))
	}
	spec := m.ImageSpec()
	if out, err := f.checkWeights(ctx, e, job, spec); out != nil || err != nil {
		return out, err
	}
	fl, hit, err := f.ensure(ctx, spec)
	var se *specError
	if errors.As(err, &se) {
		return f.failed(e, job, spec, ReasonBuildFailed, err.Error())
	}
	if err != nil {
		return nil, fn.Retry(err)
	}
	if hit != nil {
		f.handled.WithLabelValues("cache_hit").Inc()
		log.Info().Str("image", hit.Reference).Msg("image up to date")
		return f.built(e, job, spec, *hit, true, 0)
	}
	if err := f.keep(e, job.ID); err != nil {
		return nil, fn.Retry(err)
	}
	select {
	case <-fl.done:
		f.forget(job.ID)
		return f.answer(e, job, spec, fl)
	case <-time.After(f.replyWithin):
		f.mu.Lock()
		select {
		case <-fl.done:
			f.mu.Unlock()
			f.forget(job.ID)
			return f.answer(e, job, spec, fl)
		default:
			fl.waiters = append(fl.waiters, e)
		}
		f.mu.Unlock()
		f.handled.WithLabelValues("deferred").Inc()
		log.Info().Str("spec", spec).Dur("after", f.replyWithin).Msg("build under way: answering now, reporting by event")
		return nil, nil
	case <-ctx.Done():
		return nil, fn.Retry(ctx.Err())
	}
}

// checkWeights refuses a job that asks for pretrained weights when its
// model has none imported and no model hub can be reached: nothing could
// give the adapter its weights. The refusal names the command that imports
// them.
func (f *Function) checkWeights(ctx context.Context, e event.Event, job events.JobRequestedData, spec string) (*event.Event, error) {
	if !job.Hyperparameters.Pretrained || f.weights == nil || f.hubReachable {
		return nil, nil
	}
	_, err := weights.Current(ctx, f.weights, job.Model, weights.WithBucket(f.weightsBucket))
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, weights.ErrNoWeights):
		return f.failed(e, job, spec, ReasonNoWeights, fmt.Sprintf(
			"%s has no imported pretrained weights (s3://%s/%s/) and the model hub is not reachable from this platform (VP_MODEL_HUB_REACHABLE=false): "+
				"import them with `vp weights import FILE --model %s`, or ask for pretrained: false",
			job.Model, f.weightsBucket, job.Model, job.Model))
	case objstore.Transient(err):
		return nil, fn.Retry(fmt.Errorf("looking up the imported weights of %s: %w", job.Model, err))
	}
	return f.failed(e, job, spec, ReasonNoWeights, fmt.Sprintf(
		"the imported pretrained weights of %s are unusable (%v): import them again with `vp weights import FILE --model %s`", job.Model, err, job.Model))
}

// ensure answers a cache hit, or the flight building spec (started if
// none is under way).
func (f *Function) ensure(ctx context.Context, spec string) (*flight, *record, error) {
	specs, err := imagespec.LoadDir(f.specsDir)
	if err != nil {
		return nil, nil, &specError{fmt.Errorf("loading the image specs: %w", err)}
	}
	stamp, err := assemble.Stamp(specs, spec)
	if err != nil {
		return nil, nil, &specError{fmt.Errorf("stamping %s: %w", spec, err)}
	}
	f.mu.Lock()
	rec, ok := f.known[spec]
	fl := f.flights[spec]
	f.mu.Unlock()
	if fl == nil && ok && rec.Stamp == stamp && f.present(ctx, rec.Reference) {
		return nil, &rec, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl = f.flights[spec]; fl != nil {
		return fl, nil, nil
	}
	fl = &flight{done: make(chan struct{})}
	f.flights[spec] = fl
	f.bg.Add(1)
	go f.fly(spec, fl)
	return fl, nil, nil
}

// present reports whether the registry still holds ref.
func (f *Function) present(ctx context.Context, ref string) bool {
	r, err := name.ParseReference(ref, f.nameOpts()...)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = remote.Head(r, remote.WithContext(ctx))
	return err == nil
}

func (f *Function) nameOpts() []name.Option {
	if f.insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// fly builds spec, then reports to the jobs that were answered before it
// ended.
func (f *Function) fly(spec string, fl *flight) {
	defer f.bg.Done()
	start := time.Now()
	rec, hit, err := f.buildSpec(spec)
	f.builds.WithLabelValues(spec, fmt.Sprint(hit)).Observe(time.Since(start).Seconds())
	f.mu.Lock()
	fl.rec, fl.cacheHt, fl.err, fl.elapsed = rec, hit, err, time.Since(start)
	if err == nil {
		f.known[spec] = rec
		f.saveRecordsLocked()
	}
	delete(f.flights, spec)
	close(fl.done)
	waiters := fl.waiters
	f.mu.Unlock()
	if err != nil {
		f.log.Error().Err(err).Str("spec", spec).Msg("build failed")
	} else {
		f.log.Info().Str("spec", spec).Str("image", rec.Reference).Bool("cache_hit", hit).Dur("took", fl.elapsed).Msg("image built")
	}
	for _, in := range waiters {
		f.report(in, spec, fl)
	}
}

// report sends the outcome of fl to the job of in, through the sender.
func (f *Function) report(in event.Event, spec string, fl *flight) {
	var job events.JobRequestedData
	if err := events.DecodeInto(in, &job); err != nil {
		f.log.Error().Err(err).Msg("a kept job no longer decodes: dropping it")
		f.forget(in.ID())
		return
	}
	out, err := f.answer(in, job, spec, fl)
	if err == nil && out != nil {
		err = f.send.Send(f.ctx, *out)
	}
	if err != nil {
		f.log.Error().Err(err).Str("jobid", job.ID).Msg("reporting a build; the job stays kept for the next start")
		return
	}
	f.forget(job.ID)
}

// buildSpec builds and pushes spec under the cache's lock (other processes
// may share the cache folder), then remembers it.
func (f *Function) buildSpec(spec string) (record, bool, error) {
	f.build.Lock()
	defer f.build.Unlock()
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	if err := os.MkdirAll(f.cacheDir, 0o755); err != nil {
		return record{}, false, err
	}
	lock, err := os.OpenFile(filepath.Join(f.cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return record{}, false, fmt.Errorf("locking the image cache: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return record{}, false, fmt.Errorf("locking the image cache: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	specs, err := imagespec.LoadDir(f.specsDir)
	if err != nil {
		return record{}, false, fmt.Errorf("loading the image specs: %w", err)
	}
	stamp, err := assemble.Stamp(specs, spec)
	if err != nil {
		return record{}, false, err
	}
	cache, err := assemble.OpenCache(f.cacheDir)
	if err != nil {
		return record{}, false, err
	}
	pub, err := publish.New(publish.WithMountIndex(filepath.Join(f.cacheDir, "mounts.json")))
	if err != nil {
		return record{}, false, err
	}
	b, err := assemble.New(cache, specs, assemble.WithPush(pub, f.repo, f.nameOpts()...))
	if err != nil {
		return record{}, false, err
	}
	r, err := b.Build(ctx, spec)
	if err != nil {
		return record{}, false, err
	}
	rec := record{Stamp: stamp, Reference: r.Reference, BytesPushed: r.BytesPushed, BytesReused: r.BytesReused}
	for _, l := range r.Layers {
		rec.Layers = append(rec.Layers, events.Layer{Digest: l.Digest, Size: l.Size, MediaType: l.MediaType, Reused: l.Push != "" && l.Push.Reused()})
	}
	return rec, r.CacheHit(), nil
}

func (f *Function) saveRecordsLocked() {
	b, err := json.MarshalIndent(f.known, "", "  ")
	if err == nil {
		tmp := f.recordsFile() + ".tmp"
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, f.recordsFile())
		}
	}
	if err != nil {
		f.log.Warn().Err(err).Msg("keeping the record of builds")
	}
}

// answer is image.built or image.failed for a finished flight.
func (f *Function) answer(in event.Event, job events.JobRequestedData, spec string, fl *flight) (*event.Event, error) {
	if fl.err != nil {
		return f.failed(in, job, spec, ReasonBuildFailed, fl.err.Error())
	}
	f.handled.WithLabelValues("built").Inc()
	return f.built(in, job, spec, fl.rec, fl.cacheHt, fl.elapsed)
}

func (f *Function) built(in event.Event, job events.JobRequestedData, spec string, rec record, hit bool, took time.Duration) (*event.Event, error) {
	d := events.ImageBuiltData{
		Job: job.ID, Request: job, Framework: spec, Reference: rec.Reference, Layers: rec.Layers,
		BytesPushed: rec.BytesPushed, BytesReused: rec.BytesReused, CacheHit: hit, DurationMS: took.Milliseconds(),
	}
	// What trains the model in the image: the catalog's adapter and its
	// --model for this job (a Hub id or weights file when pretrained).
	if m, err := f.catalog.Lookup(job.Model.Framework, job.Model.Name); err == nil {
		d.Adapter = events.AdapterRef{Name: m.Adapter, Model: m.AdapterArg(job.Hyperparameters.Pretrained)}
	}
	out, err := events.Next(in, Source, d)
	if err != nil {
		return nil, fmt.Errorf("making image.built: %w", err)
	}
	return &out, nil
}

func (f *Function) failed(in event.Event, job events.JobRequestedData, spec, reason, msg string) (*event.Event, error) {
	f.handled.WithLabelValues(strings.ToLower(reason)).Inc()
	f.log.Warn().Str("jobid", job.ID).Str("reason", reason).Msg(msg)
	if spec == "" {
		spec = "unknown"
	}
	out, err := events.Next(in, Source, events.ImageFailedData{Job: job.ID, Framework: spec, Reason: reason, Message: msg})
	if err != nil {
		return nil, fmt.Errorf("making image.failed: %w", err)
	}
	return &out, nil
}

// keep writes the job's event beside the cache until it is answered, so
// that a restart in the middle of a build still answers it.
func (f *Function) keep(e event.Event, jobID string) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("keeping job %s: %w", jobID, err)
	}
	p := filepath.Join(f.pendingDir(), jobID+".json")
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		return fmt.Errorf("keeping job %s: %w", jobID, err)
	}
	return os.Rename(p+".tmp", p)
}

func (f *Function) forget(jobID string) {
	if err := os.Remove(filepath.Join(f.pendingDir(), jobID+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.log.Warn().Err(err).Str("jobid", jobID).Msg("forgetting a kept job")
	}
}

// resume takes up the jobs an earlier instance kept: each is built (or
// found up to date) and reported by event.
func (f *Function) resume() {
	entries, err := os.ReadDir(f.pendingDir())
	if err != nil {
		f.log.Warn().Err(err).Msg("reading kept jobs")
		return
	}
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(f.pendingDir(), de.Name()))
		var e event.Event
		if err == nil {
			err = json.Unmarshal(b, &e)
		}
		if err != nil {
			f.log.Warn().Err(err).Str("file", de.Name()).Msg("dropping an unreadable kept job")
			_ = os.Remove(filepath.Join(f.pendingDir(), de.Name()))
			continue
		}
		f.log.Info().Str("id", e.ID()).Msg("taking up a job kept by an earlier instance")
		f.bg.Add(1)
		go func() {
			defer f.bg.Done()
			out, err := f.Handle(f.ctx, e)
			if err == nil && out != nil {
				err = f.send.Send(f.ctx, *out)
				if err == nil {
					var job events.JobRequestedData
					if events.DecodeInto(e, &job) == nil {
						f.forget(job.ID)
					}
				}
			}
			if err != nil {
				f.log.Error().Err(err).Str("id", e.ID()).Msg("taking up a kept job")
			}
		}()
	}
}
