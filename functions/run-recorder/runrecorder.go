package runrecorder

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
)

// FuncYAML is the function's func.yaml.
//
//go:embed func.yaml
var FuncYAML []byte

// Function records events in the ledger.
type Function struct {
	store    objstore.Store
	bucket   string
	log      *zerolog.Logger
	ledger   *ledger.Ledger
	recorded *prometheus.CounterVec
	reg      prometheus.Registerer
}

// Option configures the function.
type Option func(*Function)

// WithStore records in store instead of the one VP_S3_* names.
func WithStore(s objstore.Store) Option { return func(f *Function) { f.store = s } }

// WithBucket sets the ledger's bucket (default VP_LEDGER_BUCKET, then
// ledger.DefaultBucket).
func WithBucket(b string) Option { return func(f *Function) { f.bucket = b } }

// WithLogger logs to l instead of the logger VP_LOG_* describe.
func WithLogger(l zerolog.Logger) Option { return func(f *Function) { f.log = &l } }

// WithMetrics registers the function's metrics with r.
func WithMetrics(r prometheus.Registerer) Option { return func(f *Function) { f.reg = r } }

// New makes the function; Start configures what no option set.
func New(opts ...Option) *Function {
	f := &Function{}
	for _, o := range opts {
		o(f)
	}
	f.recorded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vp_run_recorder_events_total", Help: "Events handled by the run-recorder, by type and result.",
	}, []string{"type", "result"})
	if f.reg != nil {
		f.reg.MustRegister(f.recorded)
	}
	return f
}

// Start reads the settings: VP_S3_* (the store), VP_LEDGER_BUCKET,
// VP_LOG_FORMAT and VP_LOG_LEVEL.
func (f *Function) Start(_ context.Context, cfg map[string]string) error {
	c := fn.Config(cfg)
	if err := c.SetLogger(&f.log, "run-recorder"); err != nil {
		return err
	}
	if err := c.SetStore(&f.store); err != nil {
		return err
	}
	if f.bucket == "" {
		f.bucket = c.Or("VP_LEDGER_BUCKET", ledger.DefaultBucket)
	}
	f.ledger = ledger.New(f.store, f.bucket)
	return nil
}

// Stop has nothing to release.
func (f *Function) Stop(context.Context) error { return nil }

// Ready once started.
func (f *Function) Ready(context.Context) (bool, error) { return f.ledger != nil, nil }

// Handle records e. An invalid platform event is refused (the broker
// dead-letters it); a store that cannot be reached is a failure the broker
// retries. Events outside the vocabulary are acknowledged and ignored.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if f.ledger == nil {
		return nil, fn.Retry(errors.New("run-recorder not started"))
	}
	if !events.Type(e.Type()).Known() {
		f.recorded.WithLabelValues("other", "ignored").Inc()
		return nil, nil
	}
	if err := events.Validate(e); err != nil {
		f.recorded.WithLabelValues(events.Type(e.Type()).Short(), "refused").Inc()
		f.log.Warn().Err(err).Str("id", e.ID()).Str("type", e.Type()).Msg("refusing an invalid event")
		return nil, fn.Invalid(err)
	}
	if err := f.ledger.Record(ctx, e); err != nil {
		f.recorded.WithLabelValues(events.Type(e.Type()).Short(), "failed").Inc()
		f.log.Error().Err(err).Str("id", e.ID()).Str("type", e.Type()).Msg("recording")
		return nil, fn.Retry(fmt.Errorf("recording %s: %w", e.ID(), err))
	}
	f.recorded.WithLabelValues(events.Type(e.Type()).Short(), "recorded").Inc()
	f.log.Debug().Str("id", e.ID()).Str("type", e.Type()).Str("jobid", fmt.Sprint(e.Extensions()[events.ExtJobID])).Msg("recorded")
	return nil, nil
}
