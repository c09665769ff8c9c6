package mlflowsync

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/functions/mlflow-sync/mlflow"
	"github.com/vision-platform/vp/internal/objstore"
)

// FuncYAML is the function's func.yaml.
//
//go:embed func.yaml
var FuncYAML []byte

// Settings the function reads (besides VP_LOG_FORMAT and VP_LOG_LEVEL).
const (
	EnvTrackingURI    = "VP_MLFLOW_TRACKING_URI"
	EnvToken          = "VP_MLFLOW_TOKEN"
	EnvUsername       = "VP_MLFLOW_USERNAME"
	EnvPassword       = "VP_MLFLOW_PASSWORD"
	EnvRegisterModels = "VP_MLFLOW_REGISTER_MODELS"
	EnvModelName      = "VP_MLFLOW_MODEL_NAME"
	EnvTimeout        = "VP_MLFLOW_TIMEOUT"
	EnvRunsBucket     = "VP_RUNS_BUCKET"
)

// DefaultModelName names a run's registered model: {framework} and {name}
// are the model's.
const DefaultModelName = "{framework}-{name}"

// Function syncs platform runs to MLflow.
type Function struct {
	log        *zerolog.Logger
	reg        prometheus.Registerer
	hc         *http.Client
	perMetric  bool
	cacheSize  int
	client     *mlflow.Client
	register   bool
	modelName  string
	artifacts  string         // the experiments' artifact location
	bucket     string         // its bucket, the runs bucket
	store      objstore.Store // nil: artifacts are not copied
	runs       *runCache
	expMu      sync.Mutex
	expIDs     map[string]string // experiment name → id
	handled    *prometheus.CounterVec
	requests   *prometheus.CounterVec
	reqSeconds *prometheus.HistogramVec
}

// Option configures the function.
type Option func(*Function)

// WithLogger logs to l instead of the logger VP_LOG_* describe.
func WithLogger(l zerolog.Logger) Option { return func(f *Function) { f.log = &l } }

// WithMetrics registers the function's metrics with r.
func WithMetrics(r prometheus.Registerer) Option { return func(f *Function) { f.reg = r } }

// WithStore copies run artifacts within s instead of the store VP_S3_*
// names.
func WithStore(s objstore.Store) Option { return func(f *Function) { f.store = s } }

// WithHTTPClient calls MLflow with hc.
func WithHTTPClient(hc *http.Client) Option { return func(f *Function) { f.hc = hc } }

// WithOneRequestPerMetric logs each metric value in a runs/log-metric
// request of its own instead of one runs/log-batch per event: the slower
// path, kept to measure the batch against.
func WithOneRequestPerMetric() Option { return func(f *Function) { f.perMetric = true } }

// New makes the function; Start configures what no option set.
func New(opts ...Option) *Function {
	f := &Function{cacheSize: 256, expIDs: map[string]string{}}
	for _, o := range opts {
		o(f)
	}
	f.handled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vp_mlflow_sync_events_total", Help: "Events handled by mlflow-sync, by type and result.",
	}, []string{"type", "result"})
	f.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vp_mlflow_sync_requests_total", Help: "Requests to MLflow's REST API, by endpoint and HTTP status (0: no answer).",
	}, []string{"endpoint", "code"})
	f.reqSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vp_mlflow_sync_request_seconds", Help: "Time of the requests to MLflow's REST API, by endpoint.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	}, []string{"endpoint"})
	if f.reg != nil {
		f.reg.MustRegister(f.handled, f.requests, f.reqSeconds)
	}
	return f
}

// Start reads the settings: VP_MLFLOW_TRACKING_URI (required: the
// tracking server's http(s) URL), VP_MLFLOW_TOKEN (a bearer token) or
// VP_MLFLOW_USERNAME and VP_MLFLOW_PASSWORD (basic authentication),
// VP_MLFLOW_REGISTER_MODELS (register succeeded runs' models; false by
// default), VP_MLFLOW_MODEL_NAME (the registered model's name,
// DefaultModelName by default), VP_MLFLOW_TIMEOUT (per request, 10s),
// VP_RUNS_BUCKET (the experiments' artifact location s3://<bucket>/; runs
// by default), VP_S3_* (the platform's object store, where run artifacts
// are copied into their MLflow run's artifact folder; without
// VP_S3_ENDPOINT they are only recorded as tags), VP_LOG_FORMAT and
// VP_LOG_LEVEL. Neither MLflow nor the store need be up: events wait in
// the broker until they are.
func (f *Function) Start(_ context.Context, cfg map[string]string) error {
	c := fn.Config(cfg)
	if err := c.SetLogger(&f.log, "mlflow-sync"); err != nil {
		return err
	}
	uri := strings.TrimSpace(c.Get(EnvTrackingURI))
	if uri == "" {
		return ErrNoTrackingURI
	}
	timeout, err := c.Duration(EnvTimeout, 10*time.Second)
	if err != nil {
		return err
	}
	if timeout == 0 {
		return fmt.Errorf("%s: must be positive", EnvTimeout)
	}
	opts := []mlflow.Option{mlflow.WithTimeout(timeout), mlflow.WithObserver(f.observe)}
	if f.hc != nil {
		opts = append(opts, mlflow.WithHTTPClient(f.hc))
	}
	token, user, password := c.Get(EnvToken), c.Get(EnvUsername), c.Get(EnvPassword)
	auth := "none"
	switch {
	case token != "" && (user != "" || password != ""):
		return fmt.Errorf("%s and %s/%s are both set: authenticate with a token or a user name and password, not both", EnvToken, EnvUsername, EnvPassword)
	case token != "":
		opts, auth = append(opts, mlflow.WithToken(token)), "bearer token"
	case user != "" || password != "":
		if user == "" || password == "" {
			return fmt.Errorf("%s and %s: set both for basic authentication, or neither", EnvUsername, EnvPassword)
		}
		opts, auth = append(opts, mlflow.WithBasicAuth(user, password)), "basic"
	}
	client, err := mlflow.New(uri, opts...)
	if err != nil {
		return fmt.Errorf("%s: %w", EnvTrackingURI, err)
	}
	if f.register, err = c.Bool(EnvRegisterModels, false); err != nil {
		return err
	}
	f.modelName = c.Or(EnvModelName, DefaultModelName)
	if !strings.Contains(f.modelName, "{name}") {
		return fmt.Errorf("%s: %q lacks {name}: every model would be one registered model", EnvModelName, f.modelName)
	}
	if strings.ContainsAny(f.modelName, "/:") {
		return fmt.Errorf("%s: %q: MLflow's model names cannot hold a slash or a colon", EnvModelName, f.modelName)
	}
	if f.store == nil {
		st, err := c.Store()
		switch {
		case errors.Is(err, objstore.ErrNoEndpoint):
			f.log.Info().Msg("VP_S3_ENDPOINT is not set: run artifacts are recorded as tags only, not copied into their MLflow runs' artifact folders")
		case err != nil:
			return err
		default:
			f.store = st
		}
	}
	f.bucket = c.Or(EnvRunsBucket, "runs")
	f.artifacts = "s3://" + f.bucket + "/"
	f.runs = newRunCache(f.cacheSize)
	f.client = client
	f.log.Info().Str("tracking_uri", client.URI()).Str("auth", auth).Bool("register_models", f.register).
		Str("artifact_location", f.artifacts).Bool("copy_artifacts", f.store != nil).Msg("syncing runs to MLflow")
	return nil
}

// Stop has nothing to release.
func (f *Function) Stop(context.Context) error { return nil }

// Ready once started.
func (f *Function) Ready(context.Context) (bool, error) { return f.client != nil, nil }

func (f *Function) observe(endpoint string, status int, d time.Duration) {
	f.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	f.reqSeconds.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Handle syncs a run.started, run.progress or run.finished to MLflow.
// MLflow unreachable or failing (5xx, 429, a refused credential), or a
// run whose run.started is not synced yet: 503, and the broker
// redelivers. An invalid event, or one MLflow refuses as invalid: 400 (the
// broker dead-letters it). Other events are acknowledged and ignored.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if f.client == nil {
		return nil, fn.Retry(errors.New("mlflow-sync not started"))
	}
	t := events.Type(e.Type())
	if t != events.RunStarted && t != events.RunProgress && t != events.RunFinished {
		f.handled.WithLabelValues("other", "ignored").Inc()
		return nil, nil
	}
	p, err := events.Decode(e)
	if err != nil {
		f.handled.WithLabelValues(t.Short(), "refused").Inc()
		f.log.Warn().Err(err).Str("id", e.ID()).Str("type", e.Type()).Msg("refusing an invalid event")
		return nil, fn.Invalid(err)
	}
	var res result
	switch d := p.(type) {
	case *events.RunStartedData:
		res, err = f.started(ctx, e, d)
	case *events.RunProgressData:
		res, err = f.progress(ctx, d)
	case *events.RunFinishedData:
		res, err = f.finished(ctx, e, d)
	}
	log := f.log.With().Str("id", e.ID()).Str("type", e.Type()).Str("run", p.Subject()).Logger()
	switch {
	case errors.Is(err, ErrNotStarted):
		f.handled.WithLabelValues(t.Short(), "waiting").Inc()
		log.Info().Msg("waiting for the run's run.started (redelivered by the broker)")
		return nil, fn.Retry(fmt.Errorf("%s of run %s: %w", t.Short(), p.Subject(), err))
	case mlflow.Permanent(err), errors.Is(err, mlflow.ErrUnquotable):
		f.handled.WithLabelValues(t.Short(), "refused").Inc()
		log.Error().Err(err).Msg("MLflow refused the event's data")
		return nil, fn.Refuse("syncing %s of run %s: %v", t.Short(), p.Subject(), err)
	case err != nil:
		f.handled.WithLabelValues(t.Short(), "retried").Inc()
		log.Warn().Err(err).Msg("syncing to MLflow failed (redelivered by the broker)")
		return nil, fn.Retry(fmt.Errorf("syncing %s of run %s: %w", t.Short(), p.Subject(), err))
	}
	f.handled.WithLabelValues(t.Short(), string(res)).Inc()
	log.Debug().Str("result", string(res)).Msg("synced")
	return nil, nil
}

// result is what handling an event did.
type result string

const (
	resultSynced    result = "synced"
	resultDuplicate result = "duplicate" // everything was in MLflow already
)
