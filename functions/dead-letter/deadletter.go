package deadletter

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/internal/objstore"
)

// FuncYAML is the function's func.yaml.
//
//go:embed func.yaml
var FuncYAML []byte

// DefaultBucket is where dead letters are kept unless VP_DEAD_LETTER_BUCKET
// says otherwise.
const DefaultBucket = "dead-letters"

// ContentType is the Content-Type of a kept dead letter: the event in
// CloudEvents' structured JSON form.
const ContentType = "application/cloudevents+json"

// The extensions Knative's broker (and the local one) set on a dead letter.
const (
	ExtErrorDest = "knativeerrordest" // the subscriber that failed
	ExtErrorCode = "knativeerrorcode" // its last status
	ExtErrorData = "knativeerrordata" // its last answer, base64, cut at 1,024 characters
	// ExtBrokerTTL is the broker's hop count; a replayed event starts anew.
	ExtBrokerTTL = "knativebrokerttl"
)

// Function keeps dead letters in object storage.
type Function struct {
	store  objstore.Store
	bucket string
	now    func() time.Time
	log    *zerolog.Logger
	kept   *prometheus.CounterVec
	reg    prometheus.Registerer

	started bool
}

// Option configures the function.
type Option func(*Function)

// WithStore keeps dead letters in s instead of the store VP_S3_* names.
func WithStore(s objstore.Store) Option { return func(f *Function) { f.store = s } }

// WithBucket sets the bucket (default VP_DEAD_LETTER_BUCKET, then
// DefaultBucket).
func WithBucket(b string) Option { return func(f *Function) { f.bucket = b } }

// WithLogger logs to l instead of the logger VP_LOG_* describe.
func WithLogger(l zerolog.Logger) Option { return func(f *Function) { f.log = &l } }

// WithMetrics registers the function's metrics with r.
func WithMetrics(r prometheus.Registerer) Option { return func(f *Function) { f.reg = r } }

// New makes the function; Start configures what no option set.
func New(opts ...Option) *Function {
	f := &Function{now: time.Now}
	for _, o := range opts {
		o(f)
	}
	f.kept = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vp_dead_letter_events_total", Help: "Dead letters received, by event type and result (kept, failed).",
	}, []string{"type", "result"})
	if f.reg != nil {
		f.reg.MustRegister(f.kept)
	}
	return f
}

// Start reads the settings no option set: VP_S3_* (the store),
// VP_DEAD_LETTER_BUCKET, VP_LOG_FORMAT and VP_LOG_LEVEL.
func (f *Function) Start(_ context.Context, cfg map[string]string) error {
	c := fn.Config(cfg)
	if err := c.SetLogger(&f.log, "dead-letter"); err != nil {
		return err
	}
	if err := c.SetStore(&f.store); err != nil {
		return err
	}
	if f.bucket == "" {
		f.bucket = c.Or("VP_DEAD_LETTER_BUCKET", DefaultBucket)
	}
	f.started = true
	return nil
}

// Stop has nothing to release.
func (f *Function) Stop(context.Context) error { return nil }

// Ready once started.
func (f *Function) Ready(context.Context) (bool, error) { return f.started, nil }

// Handle keeps e, whatever it is: an event the broker gave up on is often
// one no subscriber could read. The answer is empty; a store that cannot be
// reached is a failure the broker retries (a dead-letter sink's delivery is
// retried as any other).
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if !f.started {
		return nil, fn.Retry(ErrNotStarted)
	}
	typ := typeLabel(e.Type())
	body, err := json.Marshal(e)
	if err != nil {
		f.kept.WithLabelValues(typ, "failed").Inc()
		return nil, fn.Refuse("encoding the event %s: %v", e.ID(), err)
	}
	u := objstore.URI{Bucket: f.bucket, Key: Key(f.now(), e)}
	if _, err := f.store.Put(ctx, u, bytes.NewReader(body), int64(len(body)), objstore.WithContentType(ContentType)); err != nil {
		f.kept.WithLabelValues(typ, "failed").Inc()
		f.log.Error().Err(err).Str("id", e.ID()).Str("type", e.Type()).Msg("keeping a dead letter")
		return nil, fn.Retry(fmt.Errorf("keeping %s: %w", e.ID(), err))
	}
	f.kept.WithLabelValues(typ, "kept").Inc()
	f.log.Warn().Str("id", e.ID()).Str("type", e.Type()).Str("key", u.Key).
		Str("dest", extString(e, ExtErrorDest)).Str("code", extString(e, ExtErrorCode)).Msg("dead letter kept")
	return nil, nil
}

// typeLabel keeps the metric's type label bounded: the vocabulary's types
// by their short name, any other as "other".
func typeLabel(t string) string {
	if typ := events.Type(t); typ.Known() {
		return typ.Short()
	}
	return "other"
}

// DateLayout is the key's first element: the day (UTC) the dead letter was
// received.
const DateLayout = "2006-01-02"

// Key is where the dead letter e received at t is kept:
// <date>/<id>-<hash>.json, the id with characters other than letters,
// digits, '.', '_' and '-' replaced and cut at 100, and the hash (12 hex
// digits) of the source, the id and the failed subscriber. The same dead
// letter delivered twice on one day is one object; the same event given up
// on by two subscribers is two.
func Key(t time.Time, e event.Event) string {
	h := sha256.Sum256([]byte(e.Source() + "\x00" + e.ID() + "\x00" + extString(e, ExtErrorDest)))
	return t.UTC().Format(DateLayout) + "/" + safeID(e.ID()) + "-" + hex.EncodeToString(h[:6]) + ".json"
}

func safeID(id string) string {
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 100 {
			break
		}
	}
	return b.String()
}

// extString is an extension's value as a string ("" when absent).
func extString(e event.Event, name string) string {
	v, ok := e.Extensions()[name]
	if !ok {
		return ""
	}
	return fmt.Sprint(v)
}
