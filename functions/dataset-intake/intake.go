package datasetintake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/internal/objstore"
)

// FuncYAML is the function's func.yaml.
//
//go:embed func.yaml
var FuncYAML []byte

// Source is the CloudEvents source of the function's events.
const Source = "/vp/dataset-intake"

// Settings are the settings Start reads (see Start).
var Settings = []string{
	"VP_INTAKE_TOKEN", "VP_INTAKE_TIMEOUT",
	"VP_INTAKE_ARCHIVE_MAX_SIZE", "VP_INTAKE_ARCHIVE_MAX_BYTES", "VP_INTAKE_ARCHIVE_MAX_ENTRIES", "VP_INTAKE_ARCHIVE_MAX_RATIO",
	"VP_S3_ENDPOINT", "VP_S3_ACCESS_KEY", "VP_S3_SECRET_KEY", "VP_S3_SECURE",
	"K_SINK", "VP_LOG_FORMAT", "VP_LOG_LEVEL",
}

const (
	// MaxBody bounds a notification's body.
	MaxBody = 1 << 20
	// DefaultTimeout bounds the work on one notification: under MinIO's
	// webhook timeout and func-go's 30 s write timeout.
	DefaultTimeout = 20 * time.Second
	// maxTimeout is the most VP_INTAKE_TIMEOUT may say.
	maxTimeout = 25 * time.Second
	// memoSize is how many pieces of work the function remembers.
	memoSize = 4096
)

// Function turns MinIO's object notifications into dataset.uploaded (or
// dataset.rejected) events.
type Function struct {
	store   objstore.Store
	send    sender.Interface
	log     *zerolog.Logger
	token   string
	timeout time.Duration
	limits  *Limits
	reg     prometheus.Registerer

	done    *memo
	locks   *locks
	started atomic.Bool

	notifications *prometheus.CounterVec
	emitted       *prometheus.CounterVec
}

// Option configures the function.
type Option func(*Function)

// WithStore reads and writes objects in s (default: VP_S3_*).
func WithStore(s objstore.Store) Option { return func(f *Function) { f.store = s } }

// WithSender posts events through s (default: K_SINK).
func WithSender(s sender.Interface) Option { return func(f *Function) { f.send = s } }

// WithLogger logs to l (default: VP_LOG_FORMAT and VP_LOG_LEVEL on
// standard error).
func WithLogger(l zerolog.Logger) Option { return func(f *Function) { f.log = &l } }

// WithToken takes notifications that carry "Authorization: Bearer token"
// (default: VP_INTAKE_TOKEN).
func WithToken(token string) Option { return func(f *Function) { f.token = token } }

// WithTimeout bounds the work on one notification (default:
// VP_INTAKE_TIMEOUT, 20 s; at most 25 s).
func WithTimeout(d time.Duration) Option { return func(f *Function) { f.timeout = d } }

// WithLimits bounds the archives the function unpacks (default: the
// VP_INTAKE_ARCHIVE_* settings over DefaultLimits).
func WithLimits(l Limits) Option { return func(f *Function) { f.limits = &l } }

// WithMetrics registers the function's metrics with r.
func WithMetrics(r prometheus.Registerer) Option { return func(f *Function) { f.reg = r } }

// New makes the function; Start configures what no option set.
func New(opts ...Option) *Function {
	f := &Function{done: newMemo(memoSize), locks: newLocks()}
	for _, o := range opts {
		o(f)
	}
	f.notifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vp_dataset_intake_records_total",
		Help: "Notification records (and requests without any) handled by the dataset-intake, by outcome.",
	}, []string{"outcome"})
	f.emitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vp_dataset_intake_events_total", Help: "Events the dataset-intake posted, by type.",
	}, []string{"type"})
	if f.reg != nil {
		f.reg.MustRegister(f.notifications, f.emitted)
	}
	return f
}

// Start reads the settings no option set: VP_INTAKE_TOKEN (required: the
// bearer token MinIO's webhook target sends), VP_INTAKE_TIMEOUT (20s),
// VP_INTAKE_ARCHIVE_MAX_SIZE (bytes of an archive, 256 MiB),
// VP_INTAKE_ARCHIVE_MAX_BYTES (bytes it unpacks to, 1 GiB),
// VP_INTAKE_ARCHIVE_MAX_ENTRIES (20000), VP_INTAKE_ARCHIVE_MAX_RATIO
// (100), VP_S3_* (the object store), K_SINK (where events go) and
// VP_LOG_*.
func (f *Function) Start(ctx context.Context, cfg map[string]string) error {
	c := fn.Config(cfg)
	if err := c.SetLogger(&f.log, "dataset-intake"); err != nil {
		return err
	}
	if f.token == "" {
		f.token = c.Get("VP_INTAKE_TOKEN")
		if f.token == "" {
			return ErrNoToken
		}
	}
	if f.timeout == 0 {
		d, err := c.Duration("VP_INTAKE_TIMEOUT", DefaultTimeout)
		if err != nil {
			return err
		}
		if d <= 0 || d > maxTimeout {
			return fmt.Errorf("VP_INTAKE_TIMEOUT: %s is not above 0 and at most %s (MinIO and the server time out after that)", d, maxTimeout)
		}
		f.timeout = d
	}
	if f.limits == nil {
		l := DefaultLimits
		var err error
		size, err := c.Int("VP_INTAKE_ARCHIVE_MAX_SIZE", int(l.MaxSize))
		if err != nil {
			return err
		}
		bytes, err := c.Int("VP_INTAKE_ARCHIVE_MAX_BYTES", int(l.MaxBytes))
		if err != nil {
			return err
		}
		if l.MaxEntries, err = c.Int("VP_INTAKE_ARCHIVE_MAX_ENTRIES", l.MaxEntries); err != nil {
			return err
		}
		if l.MaxRatio, err = c.Int("VP_INTAKE_ARCHIVE_MAX_RATIO", l.MaxRatio); err != nil {
			return err
		}
		l.MaxSize, l.MaxBytes = int64(size), int64(bytes)
		if err := l.check(); err != nil {
			return fmt.Errorf("VP_INTAKE_ARCHIVE_*: %w", err)
		}
		f.limits = &l
	} else if err := f.limits.check(); err != nil {
		return err
	}
	if err := c.SetStore(&f.store); err != nil {
		return err
	}
	if f.send == nil {
		s, err := c.Sender()
		if err != nil {
			return err
		}
		f.send = s
	}
	f.started.Store(true)
	return nil
}

// Stop ends the function; notifications in flight finish on their own.
func (f *Function) Stop(context.Context) error {
	f.started.Store(false)
	return nil
}

// Ready reports whether Start has run.
func (f *Function) Ready(context.Context) (bool, error) { return f.started.Load(), nil }

// answer is the function's JSON reply to MinIO, for people and tests.
type answer struct {
	Status  string   `json:"status"`
	Error   string   `json:"error,omitempty"`
	Handled int      `json:"handled,omitempty"`
	Ignored int      `json:"ignored,omitempty"`
	Events  []string `json:"events,omitempty"` // type and id of each event posted
}

func reply(w http.ResponseWriter, status int, a answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
}

// Handle takes one webhook notification from MinIO. It answers 401
// without the bearer token, 413 past MaxBody, 400 for a body that is not a
// notification, 200 once every record is handled (MinIO's empty test
// notification included), and 503 when the store or the event sink
// failed or the work ran past its deadline: MinIO keeps the notification
// (in its queue_dir) and delivers it again, so nothing is lost.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodHead:
		w.WriteHeader(http.StatusOK) // MinIO's check that the target is up
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, HEAD")
		reply(w, http.StatusMethodNotAllowed, answer{Status: "error", Error: "POST MinIO's notifications here"})
		return
	}
	if !f.started.Load() {
		reply(w, http.StatusServiceUnavailable, answer{Status: "error", Error: "not started"})
		return
	}
	if !f.authorized(r.Header.Get("Authorization")) {
		f.notifications.WithLabelValues("unauthorized").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="dataset-intake"`)
		reply(w, http.StatusUnauthorized, answer{Status: "error", Error: "missing or wrong bearer token"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			f.notifications.WithLabelValues("too_large").Inc()
			reply(w, http.StatusRequestEntityTooLarge, answer{Status: "error", Error: fmt.Sprintf("a notification is at most %d bytes", MaxBody)})
			return
		}
		reply(w, http.StatusBadRequest, answer{Status: "error", Error: "reading the body: " + err.Error()})
		return
	}
	objs, bad, err := parseNotification(body)
	if err != nil {
		f.notifications.WithLabelValues("bad_request").Inc()
		reply(w, http.StatusBadRequest, answer{Status: "error", Error: err.Error()})
		return
	}
	for _, b := range bad {
		f.notifications.WithLabelValues("bad_record").Inc()
		f.log.Warn().Str("record", b).Msg("notification record ignored")
	}
	if len(objs) == 0 && len(bad) == 0 {
		f.notifications.WithLabelValues("ping").Inc()
		reply(w, http.StatusOK, answer{Status: "ok"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), f.timeout)
	defer cancel()
	a := answer{Status: "ok", Ignored: len(bad)}
	for _, o := range objs {
		log := f.log.With().Str("event", o.Event).Str("bucket", o.Bucket).Str("key", o.Key).Logger()
		outcome, err := f.object(ctx, o, &a)
		if err != nil {
			f.notifications.WithLabelValues("retry").Inc()
			log.Error().Err(err).Msg("notification not handled: MinIO will deliver it again")
			a.Status, a.Error = "error", err.Error()
			reply(w, http.StatusServiceUnavailable, a)
			return
		}
		f.notifications.WithLabelValues(string(outcome)).Inc()
		if outcome == outcomeIgnored {
			a.Ignored++
		} else {
			a.Handled++
		}
		log.Debug().Str("outcome", string(outcome)).Msg("notification record")
	}
	reply(w, http.StatusOK, a)
}

// authorized compares the bearer token in constant time (of the token's
// hash, so that its length does not leak either).
func (f *Function) authorized(header string) bool {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	want := sha256.Sum256([]byte(f.token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
