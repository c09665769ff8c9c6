package up

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"

	"github.com/vision-platform/vp/local/broker"
	"github.com/vision-platform/vp/local/ociregistry"
)

// BrokerConfig is how `vp broker` runs the broker.
type BrokerConfig struct {
	DataDir            string
	NATSURL            string
	TriggersFile       string
	Triggers           []broker.Trigger // added to those of TriggersFile
	Addr               string
	MaxEventBytes      int64
	DedupWindow        time.Duration
	Parallelism        int
	ValidateVocabulary bool
	SyncAlways         bool
	Brokers            []string
	// Ingress limits; zero keeps the broker's default.
	ReadTimeout    time.Duration
	MaxConns       int
	MaxConnsPerIP  int
	MaxHeaderBytes int
	// Check adds to the vocabulary's validation at the ingress.
	Check func(event.Event) []events.FieldError
}

func (c BrokerConfig) options(log zerolog.Logger) ([]broker.Option, error) {
	trs := append([]broker.Trigger(nil), c.Triggers...)
	if c.TriggersFile != "" {
		fromFile, err := broker.LoadTriggers(c.TriggersFile)
		if err != nil {
			return nil, err
		}
		trs = append(trs, fromFile...)
	}
	opts := []broker.Option{broker.WithTriggers(trs...), broker.WithLogger(log),
		broker.WithVocabularyValidation(c.ValidateVocabulary), broker.WithSyncAlways(c.SyncAlways)}
	switch {
	case c.NATSURL != "" && c.DataDir != "":
		return nil, errors.New("--data and --nats-url exclude each other")
	case c.NATSURL != "":
		opts = append(opts, broker.WithNATSURL(c.NATSURL))
	case c.DataDir != "":
		opts = append(opts, broker.WithDataDir(c.DataDir))
	default:
		return nil, errors.New("--data DIR (embedded JetStream) or --nats-url URL is required")
	}
	if c.MaxEventBytes != 0 {
		opts = append(opts, broker.WithMaxEventBytes(c.MaxEventBytes))
	}
	if c.DedupWindow != 0 {
		opts = append(opts, broker.WithDedupWindow(c.DedupWindow))
	}
	if c.Parallelism != 0 {
		opts = append(opts, broker.WithParallelism(c.Parallelism))
	}
	if c.ReadTimeout != 0 {
		opts = append(opts, broker.WithReadTimeout(c.ReadTimeout))
	}
	if c.MaxConns != 0 {
		opts = append(opts, broker.WithMaxConns(c.MaxConns))
	}
	if c.MaxConnsPerIP != 0 {
		opts = append(opts, broker.WithMaxConnsPerIP(c.MaxConnsPerIP))
	}
	if c.MaxHeaderBytes != 0 {
		opts = append(opts, broker.WithMaxHeaderBytes(c.MaxHeaderBytes))
	}
	if c.Check != nil {
		opts = append(opts, broker.WithEventCheck(c.Check))
	}
	for _, b := range c.Brokers {
		opts = append(opts, broker.WithBroker(b))
	}
	return opts, nil
}

// RunBroker serves the broker on c.Addr until ctx ends.
func RunBroker(ctx context.Context, c BrokerConfig, log zerolog.Logger) error {
	opts, err := c.options(log)
	if err != nil {
		return err
	}
	b, err := broker.New(ctx, opts...)
	if err != nil {
		return err
	}
	defer b.Close()
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", c.Addr, err)
	}
	log.Info().Str("addr", "http://"+ln.Addr().String()).Msg("broker listening; ingress at /{namespace}/{broker}")
	return b.Serve(ctx, ln)
}

// serve runs h on ln until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, ln net.Listener, h http.Handler, log zerolog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn().Err(err).Msg("shutting down HTTP server")
	}
	return nil
}

// RunRegistry serves the embedded OCI registry stored in dir on addr until
// ctx ends.
func RunRegistry(ctx context.Context, dir, addr string, log zerolog.Logger, opts ...ociregistry.Option) error {
	reg, err := ociregistry.New(ctx, dir, opts...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	log.Info().Str("addr", ln.Addr().String()).Str("data", dir).Msg("OCI registry listening")
	return reg.Serve(ctx, ln)
}
