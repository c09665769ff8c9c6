package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
)

// Option configures a Broker.
type Option func(*options) error

type options struct {
	dataDir     string
	natsURL     string
	triggers    []Trigger
	brokers     []string // "namespace/name"
	maxBytes    int64
	dedupWindow time.Duration
	parallelism int
	delivery    Delivery
	validate    bool
	check       func(event.Event) []events.FieldError
	syncAlways  bool
	ackWait     time.Duration
	log         zerolog.Logger

	// Limits of the HTTP server Serve runs (see the README's security
	// notes).
	readTimeout    time.Duration
	maxConns       int
	maxConnsPerIP  int
	maxHeaderBytes int
}

// Defaults of the ingress limits.
const (
	// DefaultReadTimeout is how long a client has to send a whole request.
	DefaultReadTimeout = 30 * time.Second
	// DefaultMaxConns bounds the connections Serve holds open at once.
	DefaultMaxConns = 1024
	// DefaultMaxConnsPerIP bounds the connections from one client address.
	DefaultMaxConnsPerIP = 256
	// DefaultMaxHeaderBytes bounds a request's line and headers.
	DefaultMaxHeaderBytes = 16 << 10
	// idleTimeout closes keep-alive connections idle this long: above the
	// 90 s after which Go's and most clients drop theirs, so the client
	// closes first and never posts on a connection the broker is closing.
	idleTimeout = 2 * time.Minute
)

// WithDataDir stores events in an embedded JetStream under dir.
func WithDataDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("WithDataDir: empty directory")
		}
		o.dataDir = dir
		return nil
	}
}

// WithNATSURL stores events in an external NATS cluster with JetStream
// instead of the embedded server.
func WithNATSURL(url string) Option {
	return func(o *options) error {
		if url == "" {
			return errors.New("WithNATSURL: empty URL")
		}
		o.natsURL = url
		return nil
	}
}

// WithTriggers sets the triggers (see LoadTriggers).
func WithTriggers(ts ...Trigger) Option {
	return func(o *options) error { o.triggers = append(o.triggers, ts...); return nil }
}

// WithBroker declares a broker that has no trigger yet, "namespace/name".
// Brokers named by triggers, and default/default, always exist.
func WithBroker(namespacedName string) Option {
	return func(o *options) error {
		if _, _, err := splitBroker(namespacedName); err != nil {
			return err
		}
		o.brokers = append(o.brokers, namespacedName)
		return nil
	}
}

// WithMaxEventBytes bounds an ingress request body (default 1 MiB); larger
// requests get 413.
func WithMaxEventBytes(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("WithMaxEventBytes: %d is not positive", n)
		}
		o.maxBytes = n
		return nil
	}
}

// WithDedupWindow sets how long an event's source+id is remembered to drop
// duplicates (default 10 minutes).
func WithDedupWindow(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("WithDedupWindow: %v is not positive", d)
		}
		o.dedupWindow = d
		return nil
	}
}

// WithParallelism bounds the deliveries in flight per trigger (default 64).
func WithParallelism(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("WithParallelism: %d is less than 1", n)
		}
		o.parallelism = n
		return nil
	}
}

// WithDefaultDelivery sets the delivery of triggers without spec.delivery.
func WithDefaultDelivery(d Delivery) Option {
	return func(o *options) error {
		if d.Retry < 0 || d.Delay < 0 || d.Timeout <= 0 || d.Delay > MaxDeliveryDuration || d.Timeout > MaxDeliveryDuration {
			return fmt.Errorf("WithDefaultDelivery: bad delivery %+v", d)
		}
		o.delivery = d
		return nil
	}
}

// WithVocabularyValidation makes the ingress refuse events of the
// platform's types (dev.visionplatform.*) whose payload is invalid, with a
// 400 naming the fields. Knative's broker does not look at payloads, so it
// is off by default.
func WithVocabularyValidation(on bool) Option {
	return func(o *options) error { o.validate = on; return nil }
}

// WithEventCheck adds check to the ingress's validation of the platform's
// events (with WithVocabularyValidation): the fields it names are refused
// with the payload's. vp up checks job.requested against the model catalog
// here, so that a job for an unknown model is refused where it enters.
func WithEventCheck(check func(event.Event) []events.FieldError) Option {
	return func(o *options) error {
		if check == nil {
			return errors.New("WithEventCheck: nil check")
		}
		o.check = check
		return nil
	}
}

// WithSyncAlways makes the embedded JetStream fsync every write before the
// ingress answers 202, so accepted events survive power loss as well as a
// killed process (slower).
func WithSyncAlways(on bool) Option {
	return func(o *options) error { o.syncAlways = on; return nil }
}

// WithRedeliveryAfter sets how long a delivery that was in flight in a
// broker process that died waits before it is delivered again (default
// 10 s). Deliveries in flight report progress at half this interval, so a
// slow subscriber is not delivered to twice.
func WithRedeliveryAfter(d time.Duration) Option {
	return func(o *options) error {
		if d < 100*time.Millisecond {
			return fmt.Errorf("WithRedeliveryAfter: %v is under 100ms", d)
		}
		o.ackWait = d
		return nil
	}
}

// WithReadTimeout sets how long a client may take to send one request,
// headers and body, from its first byte (default 30 s). A client that is
// slower gets 408 and its connection is closed. It is also the time allowed
// to write the answer.
func WithReadTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("WithReadTimeout: %v is not positive", d)
		}
		o.readTimeout = d
		return nil
	}
}

// WithMaxConns bounds the connections Serve keeps open at once, idle
// keep-alive connections included (default 1024). A connection over the
// limit is answered 503 and closed.
func WithMaxConns(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("WithMaxConns: %d is less than 1", n)
		}
		o.maxConns = n
		return nil
	}
}

// WithMaxConnsPerIP bounds the connections Serve keeps open from one client
// address (default 256); 0 removes the bound. A connection over it is
// answered 429 and closed. Every local client shares 127.0.0.1.
func WithMaxConnsPerIP(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("WithMaxConnsPerIP: %d is negative", n)
		}
		o.maxConnsPerIP = n
		return nil
	}
}

// WithMaxHeaderBytes bounds a request's line and headers together (default
// 16 KiB); larger ones get 431. Serve holds a buffer of this size for every
// open connection.
func WithMaxHeaderBytes(n int) Option {
	return func(o *options) error {
		if n < 1024 {
			return fmt.Errorf("WithMaxHeaderBytes: %d is under 1024", n)
		}
		o.maxHeaderBytes = n
		return nil
	}
}

// WithLogger sets where the broker logs (default: nowhere).
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error { o.log = l; return nil }
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		maxBytes:    1 << 20,
		dedupWindow: 10 * time.Minute,
		parallelism: 64,
		delivery:    DefaultDelivery,
		ackWait:     10 * time.Second,
		log:         zerolog.Nop(),

		readTimeout:    DefaultReadTimeout,
		maxConns:       DefaultMaxConns,
		maxConnsPerIP:  DefaultMaxConnsPerIP,
		maxHeaderBytes: DefaultMaxHeaderBytes,
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	switch {
	case o.dataDir == "" && o.natsURL == "":
		return nil, errors.New("a data directory or a NATS URL is required")
	case o.dataDir != "" && o.natsURL != "":
		return nil, errors.New("a data directory or a NATS URL, not both")
	}
	return o, nil
}
