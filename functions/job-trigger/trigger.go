package jobtrigger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/strictyaml"
	"github.com/vision-platform/vp/registry"
)

// FuncYAML is the function's func.yaml.
//
//go:embed func.yaml
var FuncYAML []byte

// Source is the CloudEvents source of the function's events.
const Source = "/vp/job-trigger"

// RequestedBy is what the jobs it asks for say asked for them.
const RequestedBy = "job-trigger"

// Settings are the settings Start reads (see Start).
var Settings = []string{
	"VP_TRIGGER_RULES", "VP_TRIGGER_TIMEOUT", "VP_LEDGER_BUCKET",
	"VP_S3_ENDPOINT", "VP_S3_ACCESS_KEY", "VP_S3_SECRET_KEY", "VP_S3_SECURE",
	"VP_LOG_FORMAT", "VP_LOG_LEVEL",
}

const (
	// DefaultTimeout bounds the work on one event, under func-go's 30 s
	// write timeout.
	DefaultTimeout = 25 * time.Second
	// maxSpecSize bounds a dataset.yaml; maxManifestSize a manifest.json.
	maxSpecSize     = 1 << 20
	maxManifestSize = 64 << 20
	// prefetch bounds the small files read ahead of validation.
	prefetchFile, prefetchTotal, prefetchParallel = 1 << 20, 256 << 20, 16
)

// Function asks for a training when a dataset lands, by its dataset.yaml's
// train block or the function's rules.
type Function struct {
	store   objstore.Store
	log     *zerolog.Logger
	catalog *registry.Catalog
	ledger  *ledger.Ledger
	rules   *Rules
	timeout time.Duration
	reg     prometheus.Registerer
	started atomic.Bool

	handled *prometheus.CounterVec
}

// Option configures the function.
type Option func(*Function)

// WithStore reads datasets (and the ledger, unless WithLedger) in s
// (default: VP_S3_*).
func WithStore(s objstore.Store) Option { return func(f *Function) { f.store = s } }

// WithLogger logs to l (default: VP_LOG_FORMAT and VP_LOG_LEVEL on
// standard error).
func WithLogger(l zerolog.Logger) Option { return func(f *Function) { f.log = &l } }

// WithCatalog resolves models in c (default: registry.Default()).
func WithCatalog(c *registry.Catalog) Option { return func(f *Function) { f.catalog = c } }

// WithLedger asks l whether a job exists (default: the ledger in
// VP_LEDGER_BUCKET, ledger.DefaultBucket, of the store).
func WithLedger(l *ledger.Ledger) Option { return func(f *Function) { f.ledger = l } }

// WithRules trains datasets without a train block by r (default:
// VP_TRIGGER_RULES).
func WithRules(r *Rules) Option { return func(f *Function) { f.rules = r } }

// WithTimeout bounds the work on one event (default: VP_TRIGGER_TIMEOUT,
// 25 s).
func WithTimeout(d time.Duration) Option { return func(f *Function) { f.timeout = d } }

// WithMetrics registers the function's metrics with r.
func WithMetrics(r prometheus.Registerer) Option { return func(f *Function) { f.reg = r } }

// New makes the function; Start configures what no option set.
func New(opts ...Option) *Function {
	f := &Function{}
	for _, o := range opts {
		o(f)
	}
	f.handled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vp_job_trigger_datasets_total", Help: "dataset.uploaded events handled by the job-trigger, by outcome.",
	}, []string{"outcome"})
	if f.reg != nil {
		f.reg.MustRegister(f.handled)
	}
	return f
}

// Start reads the settings no option set: VP_S3_* (the object store),
// VP_LEDGER_BUCKET (ledger.DefaultBucket), VP_TRIGGER_RULES (a rules
// file's path, or the rules; none by default), VP_TRIGGER_TIMEOUT (25s)
// and VP_LOG_*. Rules naming a model the catalog lacks are an error.
func (f *Function) Start(ctx context.Context, cfg map[string]string) error {
	c := fn.Config(cfg)
	if err := c.SetLogger(&f.log, "job-trigger"); err != nil {
		return err
	}
	if f.catalog == nil {
		f.catalog = registry.Default()
	}
	if f.timeout == 0 {
		d, err := c.Duration("VP_TRIGGER_TIMEOUT", DefaultTimeout)
		if err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("VP_TRIGGER_TIMEOUT: must be above 0")
		}
		f.timeout = d
	}
	if f.rules == nil {
		r, err := LoadRules(c.Get("VP_TRIGGER_RULES"))
		if err != nil {
			return err
		}
		f.rules = r
	}
	if err := f.rules.checkModels(f.catalog); err != nil {
		return fmt.Errorf("checking the rules' models: %w", err)
	}
	if err := c.SetStore(&f.store); err != nil {
		return err
	}
	if f.ledger == nil {
		f.ledger = ledger.New(f.store, c.Or("VP_LEDGER_BUCKET", ledger.DefaultBucket))
	}
	f.started.Store(true)
	return nil
}

// Stop ends the function.
func (f *Function) Stop(context.Context) error {
	f.started.Store(false)
	return nil
}

// Ready reports whether Start has run.
func (f *Function) Ready(context.Context) (bool, error) { return f.started.Load(), nil }

// Handle answers a dataset.uploaded: with dataset.rejected when the
// dataset's layout, its dataset.yaml or its training does not check out
// (every problem named), with job.requested when a train block or a rule
// asks for a training the ledger does not hold yet, and with nothing when
// none does. A store that fails is fn.Retry; an event that is not a valid
// dataset.uploaded, or names a dataset that is gone, is fn.Refuse.
func (f *Function) Handle(ctx context.Context, in event.Event) (*event.Event, error) {
	if !f.started.Load() {
		return nil, fn.Retry(errors.New("not started"))
	}
	var d events.DatasetUploadedData
	if err := events.DecodeInto(in, &d); err != nil {
		f.handled.WithLabelValues("invalid").Inc()
		return nil, fn.Invalid(err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	log := f.log.With().Str("id", in.ID()).Str("bucket", d.Bucket).Str("prefix", d.Prefix).Logger()
	out, outcome, err := f.handle(ctx, in, d, log)
	f.handled.WithLabelValues(outcome).Inc()
	if err != nil {
		log.Error().Err(err).Str("outcome", outcome).Msg("dataset not handled")
		return nil, err
	}
	return out, nil
}

// handle is Handle's work; outcome labels the metric.
func (f *Function) handle(ctx context.Context, in event.Event, d events.DatasetUploadedData, log zerolog.Logger) (*event.Event, string, error) {
	reject := func(reasons []events.FieldError) (*event.Event, string, error) {
		out, err := events.Next(in, Source, events.DatasetRejectedData{Bucket: d.Bucket, Manifest: d.Manifest, VersionID: d.VersionID, Reasons: reasons})
		if err != nil {
			return nil, "error", fmt.Errorf("making %s: %w", events.DatasetRejected.Short(), err)
		}
		log.Warn().Interface("reasons", reasons).Msg("dataset rejected")
		return &out, "rejected", nil
	}
	storeErr := func(what string, err error) (*event.Event, string, error) {
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, "gone", fn.Refuse("%s: %v (the dataset is gone)", what, err)
		}
		return nil, "retry", fn.Retry(fmt.Errorf("%s: %w", what, err))
	}

	specURI := objstore.URI{Bucket: d.Bucket, Key: d.Manifest}
	raw, err := readCapped(ctx, f.store, specURI, d.VersionID, maxSpecSize)
	switch {
	case errors.Is(err, objstore.ErrTooLarge):
		return reject([]events.FieldError{{Field: dataset.SpecName, Reason: fmt.Sprintf("over %d bytes", maxSpecSize)}})
	case err != nil:
		return storeErr("reading "+d.Manifest, err)
	}
	spec, err := dataset.ParseSpec(dataset.SpecName, raw)
	if err != nil {
		return reject(dataset.SpecProblems(err))
	}
	fsys, err := objstore.NewFS(ctx, f.store, objstore.URI{Bucket: d.Bucket, Key: d.Prefix})
	switch {
	case errors.Is(err, objstore.ErrTooLarge):
		return reject([]events.FieldError{{Field: "dataset", Reason: fmt.Sprintf("more than %d objects under %s", objstore.DefaultMaxFSObjects, d.Prefix)}})
	case err != nil:
		return storeErr("listing the dataset", err)
	}
	if skipped := fsys.Skipped(); len(skipped) > 0 {
		var reasons []events.FieldError
		for _, k := range skipped[:min(len(skipped), 20)] {
			reasons = append(reasons, events.FieldError{Field: k, Reason: "not a clean path below the dataset's prefix, or both a file and a folder"})
		}
		return reject(reasons)
	}
	if _, err := fs.Stat(fsys, dataset.ManifestName); err != nil {
		return reject([]events.FieldError{{Field: dataset.ManifestName, Reason: "missing: the dataset's content manifest (the dataset-intake writes it) must be at the root of " + d.Prefix}})
	}
	mb, err := readCapped(ctx, f.store, fsys.URI(dataset.ManifestName), "", maxManifestSize)
	if err != nil {
		return storeErr("reading the manifest", err)
	}
	if got := dataset.Digest(mb); got != d.Digest {
		// The dataset changed since: a later dataset.uploaded carries it.
		log.Warn().Str("digest", d.Digest).Str("now", got).Msg("the dataset's manifest changed since this event: nothing to do")
		return nil, "stale", nil
	}
	if d.Format == events.FormatYOLO {
		budget := int64(prefetchTotal)
		err := fsys.Prefetch(prefetchParallel, func(p string, info objstore.Info) bool {
			ext := strings.ToLower(path.Ext(p))
			if (ext != ".txt" && ext != ".yaml" && ext != ".yml") || info.Size > prefetchFile || info.Size > budget {
				return false
			}
			budget -= info.Size
			return true
		})
		if err != nil {
			return storeErr("reading the label files", err)
		}
	}
	sum, problems, err := dataset.Validate(fsys, d.Task, d.Format)
	if err != nil {
		return storeErr("validating the dataset", err)
	}
	if len(problems) > 0 {
		return reject(problems)
	}
	log = log.With().Int("train", sum.Train).Int("val", sum.Val).Logger()

	p, ok := f.policy(spec, raw, d)
	if !ok {
		log.Info().Msg("no auto-train policy: no train block in dataset.yaml, no rule for its bucket and prefix")
		return nil, "no_policy", nil
	}
	job := events.JobRequestedData{
		Dataset: d.DatasetRef, Model: p.model, Hyperparameters: p.hp, Resources: p.resources, RequestedBy: RequestedBy,
	}
	if m, err := f.catalog.Lookup(p.model.Framework, p.model.Name); err == nil {
		job.Hyperparameters = m.WithDefaults(job.Hyperparameters)
	}
	if spec.Retrain {
		extra := maps.Clone(job.Hyperparameters.Extra)
		if extra == nil {
			extra = map[string]any{}
		}
		extra["retrain"] = in.ID()
		job.Hyperparameters.Extra = extra
	}
	job.ID = events.JobID(d.Digest, job.Model, job.Hyperparameters)
	if problems := f.catalog.CheckJob(job); len(problems) > 0 {
		return reject(p.place(problems))
	}
	out, err := events.Next(in, Source, job)
	if err != nil {
		var ve *events.ValidationError
		if errors.As(err, &ve) {
			var fields []events.FieldError
			for _, fe := range ve.Fields {
				fe.Field = strings.TrimPrefix(fe.Field, "data.")
				fields = append(fields, fe)
			}
			return reject(p.place(fields))
		}
		return nil, "error", err
	}
	has, err := f.ledger.HasJob(ctx, job.ID)
	if err != nil {
		return nil, "retry", fn.Retry(err)
	}
	log = log.With().Str("job", job.ID).Str("model", job.Model.String()).Str("policy", p.from).Logger()
	if has {
		log.Info().Msg("the ledger has this job already (identical content, model and hyperparameters): nothing to do")
		return nil, "duplicate", nil
	}
	log.Info().Msg("job requested")
	return &out, "requested", nil
}

// policy is what to train: the model, hyperparameters and resources, and
// where they came from, so that problems can be placed.
type policy struct {
	model     events.ModelRef
	hp        events.Hyperparameters
	resources events.Resources
	from      string // "dataset.yaml" or "rules[N]"
	// place turns a field of the job into file:line and the field as the
	// policy's source spells it.
	place func([]events.FieldError) []events.FieldError
}

// policy is the dataset.yaml's train block, or else the first rule for
// the dataset's bucket and prefix.
func (f *Function) policy(spec *dataset.Spec, raw []byte, d events.DatasetUploadedData) (policy, bool) {
	if spec.Train != nil {
		var doc yaml.Node
		_ = yaml.Unmarshal(raw, &doc) // ParseSpec read it already
		sdoc := strictyaml.Document{Node: &doc}
		return policy{
			model: spec.TrainModel(), hp: spec.TrainHyperparameters(), resources: spec.TrainResources(), from: dataset.SpecName,
			place: placer(func(p string) string {
				return fmt.Sprintf("%s:%d", dataset.SpecName, sdoc.Line(strings.Split(p, ".")...))
			}, "train."),
		}, true
	}
	r, i, ok := f.rules.Match(d.Bucket, d.Prefix)
	if !ok {
		return policy{}, false
	}
	fw, name, _ := strings.Cut(r.Model, "/")
	at := fmt.Sprintf("rules.%d.", i)
	return policy{
		model: events.ModelRef{Framework: fw, Name: name}, hp: events.Hyperparameters(r.Hyperparameters),
		resources: events.Resources(r.Resources), from: fmt.Sprintf("rules[%d]", i),
		place: placer(f.rules.at, at),
	}, true
}

// placer maps the fields of a job (CheckJob's and events.Validate's) to
// the policy's spelling under base ("train." or "rules.N."), placed by
// at. A model that does not take the dataset's task or format is the
// model's problem: the dataset is what it is.
func placer(at func(string) string, base string) func([]events.FieldError) []events.FieldError {
	return func(in []events.FieldError) []events.FieldError {
		out := make([]events.FieldError, 0, len(in))
		for _, fe := range in {
			var p string
			switch {
			case fe.Field == "model" || strings.HasPrefix(fe.Field, "model."),
				fe.Field == "dataset.task", fe.Field == "dataset.format": // the model does not fit the dataset
				p = base + "model"
			case strings.HasPrefix(fe.Field, "hyperparameters."), strings.HasPrefix(fe.Field, "resources."):
				p = base + fe.Field
			default:
				out = append(out, fe)
				continue
			}
			out = append(out, events.FieldError{Field: at(p), Reason: p + ": " + fe.Reason})
		}
		return out
	}
}

// readCapped reads an object (a version of it, when versionID is set),
// refusing one over max bytes with objstore.ErrTooLarge.
func readCapped(ctx context.Context, s objstore.Getter, u objstore.URI, versionID string, max int64) ([]byte, error) {
	opts := []objstore.GetOption{objstore.WithMaxSize(max)}
	if versionID != "" {
		opts = append(opts, objstore.WithVersion(versionID))
	}
	r, _, err := s.Get(ctx, u, opts...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
