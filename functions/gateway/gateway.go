package gateway

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/registry"
)

// FuncYAML is the function's func.yaml.
//
//go:embed func.yaml
var FuncYAML []byte

// Source is the CloudEvents source of the events the gateway emits.
const Source = "/vp/gateway"

// DefaultDatasetsBucket is where uploads go unless configured otherwise.
const DefaultDatasetsBucket = "datasets"

// Settings are the settings Start reads (see Start).
var Settings = []string{
	"VP_GATEWAY_TOKENS", "VP_GATEWAY_TOKENS_FILE", "VP_GATEWAY_DATASETS_BUCKET", "VP_GATEWAY_S3_PUBLIC_ENDPOINT",
	"VP_GATEWAY_MAX_BODY", "VP_GATEWAY_MAX_PAGE", "VP_GATEWAY_MAX_STREAMS", "VP_GATEWAY_STREAM_MAX_AGE",
	"VP_GATEWAY_PRESIGN_EXPIRY", "VP_GATEWAY_PART_SIZE", "VP_GATEWAY_MAX_FILES",
	"VP_LEDGER_BUCKET", "VP_S3_ENDPOINT", "VP_S3_ACCESS_KEY", "VP_S3_SECRET_KEY", "VP_S3_SECURE",
	"K_SINK", "VP_LOG_FORMAT", "VP_LOG_LEVEL",
}

// Limits bound what one client can make the gateway hold or do.
type Limits struct {
	// MaxBody bounds a request body (JSON, or CloudEvents on /events and
	// from the broker). Default 1 MiB.
	MaxBody int64
	// DefaultPage and MaxPage are a job listing's page size when none is
	// asked for, and the most one may ask for. Default 50 and 500.
	DefaultPage, MaxPage int
	// MaxStreams bounds the event streams (Server-Sent Events) open at
	// once; past it, 429. Default 4096.
	MaxStreams int
	// StreamMaxAge ends a stream after this long (the client resumes it
	// with Last-Event-ID, as EventSource does by itself). Default 1 h.
	StreamMaxAge time.Duration
	// Heartbeat is how often an idle stream gets a comment line, so that
	// proxies keep it and a gone client is noticed. Default 15 s.
	Heartbeat time.Duration
	// PresignExpiry is how long presigned URLs work. Default 1 h.
	PresignExpiry time.Duration
	// PartSize is the part size of multipart uploads; a file larger than
	// one part is uploaded in parts (at most 10,000: S3's limit). Default
	// 64 MiB, at least 5 MiB (S3's smallest part).
	PartSize int64
	// MaxFiles bounds the files of one dataset upload. Default 20,000.
	MaxFiles int
}

// DefaultLimits are the limits unless configured otherwise.
var DefaultLimits = Limits{
	MaxBody: 1 << 20, DefaultPage: 50, MaxPage: 500, MaxStreams: 4096, StreamMaxAge: time.Hour,
	Heartbeat: 15 * time.Second, PresignExpiry: time.Hour, PartSize: 64 << 20, MaxFiles: 20000,
}

// minPartSize is S3's smallest part (but the last); maxParts its most parts.
const (
	minPartSize = 5 << 20
	maxParts    = 10000
)

func (l Limits) check() error {
	var probs []string
	if l.MaxBody < 1024 {
		probs = append(probs, "the body limit is under 1 KiB")
	}
	if l.DefaultPage < 1 || l.MaxPage < l.DefaultPage {
		probs = append(probs, "the page sizes are not 1 ≤ default ≤ max")
	}
	if l.MaxStreams < 1 {
		probs = append(probs, "the stream limit is under 1")
	}
	if l.StreamMaxAge < time.Second || l.Heartbeat < 100*time.Millisecond {
		probs = append(probs, "a stream's age limit is under 1 s or its heartbeat under 100 ms")
	}
	if l.PresignExpiry < time.Minute || l.PresignExpiry > 7*24*time.Hour {
		probs = append(probs, "presigned URLs must last between 1 min and 7 days (S3's most)")
	}
	if l.PartSize < minPartSize || l.PartSize > 5<<30 {
		probs = append(probs, "the part size is not between 5 MiB and 5 GiB (S3's bounds)")
	}
	if l.MaxFiles < 1 {
		probs = append(probs, "the file limit is under 1")
	}
	if len(probs) > 0 {
		return fmt.Errorf("gateway limits: %s", strings.Join(probs, "; "))
	}
	return nil
}

// Function is the gateway.
type Function struct {
	store     objstore.Store
	presigner objstore.Presigner
	send      sender.Interface
	catalog   *registry.Catalog
	log       *zerolog.Logger
	reg       prometheus.Registerer
	tokens    []Token
	limits    *Limits
	datasets  string
	ledgerB   string

	auth   *authn
	ledger *ledger.Ledger
	jobs   *jobCache
	images *imageCache
	hub    *hub
	recent recentJobs
	// modelsJSON is the whole catalog's listing, encoded once.
	modelsOnce sync.Once
	modelsJSON []byte
	routes     []route
	handler    *router
	started    atomic.Bool
	// stop ends the event streams when the function stops (or the
	// context Start got ends): a server's shutdown waits for them.
	stopOnce sync.Once
	stopped  chan struct{}

	m metrics
}

// Option configures the function.
type Option func(*Function)

// WithStore reads and writes objects in s (default: VP_S3_*). Multipart
// uploads need MinIO's client: an *objstore.MinIO.
func WithStore(s objstore.Store) Option { return func(f *Function) { f.store = s } }

// WithPresigner presigns the URLs clients use with p instead of the store
// (default: a client of VP_GATEWAY_S3_PUBLIC_ENDPOINT when set, else the
// store): for clients that reach the store at another address.
func WithPresigner(p objstore.Presigner) Option { return func(f *Function) { f.presigner = p } }

// WithSender posts events through s (default: K_SINK).
func WithSender(s sender.Interface) Option { return func(f *Function) { f.send = s } }

// WithCatalog checks jobs against c (default: registry.Default()).
func WithCatalog(c *registry.Catalog) Option { return func(f *Function) { f.catalog = c } }

// WithLogger logs to l (default: VP_LOG_FORMAT and VP_LOG_LEVEL on
// standard error).
func WithLogger(l zerolog.Logger) Option { return func(f *Function) { f.log = &l } }

// WithMetrics registers the function's metrics with r.
func WithMetrics(r prometheus.Registerer) Option { return func(f *Function) { f.reg = r } }

// WithTokens takes these bearer tokens (default: VP_GATEWAY_TOKENS and
// VP_GATEWAY_TOKENS_FILE).
func WithTokens(t ...Token) Option { return func(f *Function) { f.tokens = append(f.tokens, t...) } }

// WithLimits sets the limits (default: the VP_GATEWAY_* settings over
// DefaultLimits).
func WithLimits(l Limits) Option { return func(f *Function) { f.limits = &l } }

// WithDatasetsBucket uploads datasets to bucket (default:
// VP_GATEWAY_DATASETS_BUCKET, then DefaultDatasetsBucket).
func WithDatasetsBucket(b string) Option { return func(f *Function) { f.datasets = b } }

// WithLedgerBucket reads the ledger in bucket (default VP_LEDGER_BUCKET,
// then ledger.DefaultBucket).
func WithLedgerBucket(b string) Option { return func(f *Function) { f.ledgerB = b } }

// New makes the function; Start configures what no option set.
func New(opts ...Option) *Function {
	f := &Function{stopped: make(chan struct{})}
	for _, o := range opts {
		o(f)
	}
	f.m = newMetrics()
	if f.reg != nil {
		f.m.register(f.reg)
	}
	f.routes = f.apiRoutes()
	f.routes = append(f.routes, f.consoleRoutes()...)
	f.handler = newRouter(f, f.routes)
	return f
}

// Start reads the settings no option set: VP_GATEWAY_TOKENS
// (name:scope:token,...) and VP_GATEWAY_TOKENS_FILE (a YAML file of
// tokens; see ParseTokens), one of them required; VP_GATEWAY_DATASETS_BUCKET
// (datasets); VP_GATEWAY_S3_PUBLIC_ENDPOINT (the store's address as
// clients reach it, for presigned URLs; default VP_S3_ENDPOINT);
// VP_GATEWAY_MAX_BODY (bytes, 1048576), VP_GATEWAY_MAX_PAGE (500),
// VP_GATEWAY_MAX_STREAMS (4096), VP_GATEWAY_STREAM_MAX_AGE (1h),
// VP_GATEWAY_PRESIGN_EXPIRY (1h), VP_GATEWAY_PART_SIZE (bytes, 64 MiB),
// VP_GATEWAY_MAX_FILES (20000); VP_LEDGER_BUCKET (platform); VP_S3_*
// (the store); K_SINK (where events go); VP_LOG_*. ctx is the function's
// lifetime: when it ends, the event streams end.
func (f *Function) Start(ctx context.Context, cfg map[string]string) error {
	c := fn.Config(cfg)
	if err := c.SetLogger(&f.log, "gateway"); err != nil {
		return err
	}
	if len(f.tokens) == 0 {
		if v := c.Get("VP_GATEWAY_TOKENS"); v != "" {
			t, err := ParseTokensEnv(v)
			if err != nil {
				return err
			}
			f.tokens = append(f.tokens, t...)
		}
		if p := c.Get("VP_GATEWAY_TOKENS_FILE"); p != "" {
			t, err := LoadTokensFile(p)
			if err != nil {
				return fmt.Errorf("VP_GATEWAY_TOKENS_FILE: %w", err)
			}
			f.tokens = append(f.tokens, t...)
		}
	}
	a, err := newAuthn(f.tokens)
	if err != nil {
		return err
	}
	f.auth = a
	if f.limits == nil {
		l, err := limitsFrom(c)
		if err != nil {
			return err
		}
		f.limits = &l
	}
	if err := f.limits.check(); err != nil {
		return err
	}
	if err := c.SetStore(&f.store); err != nil {
		return err
	}
	if f.presigner == nil {
		if ep := c.Get("VP_GATEWAY_S3_PUBLIC_ENDPOINT"); ep != "" {
			p, err := publicPresigner(ep, c)
			if err != nil {
				return fmt.Errorf("VP_GATEWAY_S3_PUBLIC_ENDPOINT: %w", err)
			}
			f.presigner = p
		} else {
			f.presigner = f.store
		}
	}
	if f.send == nil {
		s, err := c.Sender()
		if err != nil {
			return err
		}
		f.send = s
	}
	if f.catalog == nil {
		f.catalog = registry.Default()
	}
	if f.datasets == "" {
		f.datasets = c.Or("VP_GATEWAY_DATASETS_BUCKET", DefaultDatasetsBucket)
	}
	if f.ledgerB == "" {
		f.ledgerB = c.Or("VP_LEDGER_BUCKET", ledger.DefaultBucket)
	}
	f.ledger = ledger.New(f.store, f.ledgerB)
	f.jobs = newJobCache(f.store, f.ledger)
	f.images = newImageCache()
	f.hub = newHub(f.limits.MaxStreams)
	go func() {
		select {
		case <-ctx.Done():
			f.stop()
		case <-f.stopped:
		}
	}()
	f.started.Store(true)
	f.log.Info().Int("tokens", len(f.auth.tokens)).Str("datasets", f.datasets).Str("ledger", f.ledgerB).Msg("gateway started")
	return nil
}

func limitsFrom(c fn.Config) (Limits, error) {
	l := DefaultLimits
	body, err := c.Int("VP_GATEWAY_MAX_BODY", int(l.MaxBody))
	if err != nil {
		return l, err
	}
	l.MaxBody = int64(body)
	if l.MaxPage, err = c.Int("VP_GATEWAY_MAX_PAGE", l.MaxPage); err != nil {
		return l, err
	}
	l.DefaultPage = min(l.DefaultPage, l.MaxPage)
	if l.MaxStreams, err = c.Int("VP_GATEWAY_MAX_STREAMS", l.MaxStreams); err != nil {
		return l, err
	}
	if l.StreamMaxAge, err = c.Duration("VP_GATEWAY_STREAM_MAX_AGE", l.StreamMaxAge); err != nil {
		return l, err
	}
	if l.PresignExpiry, err = c.Duration("VP_GATEWAY_PRESIGN_EXPIRY", l.PresignExpiry); err != nil {
		return l, err
	}
	part, err := c.Int("VP_GATEWAY_PART_SIZE", int(l.PartSize))
	if err != nil {
		return l, err
	}
	l.PartSize = int64(part)
	if l.MaxFiles, err = c.Int("VP_GATEWAY_MAX_FILES", l.MaxFiles); err != nil {
		return l, err
	}
	return l, nil
}

// Stop ends the event streams; requests in flight finish on their own.
func (f *Function) Stop(context.Context) error {
	f.stop()
	f.started.Store(false)
	return nil
}

func (f *Function) stop() {
	f.stopOnce.Do(func() { close(f.stopped) })
}

// Ready reports whether Start has run.
func (f *Function) Ready(context.Context) (bool, error) { return f.started.Load(), nil }
