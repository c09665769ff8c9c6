package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
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
	syncAlways  bool
	ackWait     time.Duration
	log         zerolog.Logger
}

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
		if d.Retry < 0 || d.Delay < 0 || d.Timeout <= 0 {
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
