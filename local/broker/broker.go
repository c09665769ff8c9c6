package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

const (
	streamName    = "VP_EVENTS"
	subjectPrefix = "vp.events."
	// consumerPrefix marks the durable consumers the broker owns, one per
	// trigger; stale ones are deleted at start.
	consumerPrefix = "trigger_"
)

// Broker is a running local broker: an HTTP ingress and a dispatcher per
// trigger over JetStream. Make one with New; serve Handler; Close it.
type Broker struct {
	o        *options
	log      zerolog.Logger
	srv      *server.Server // nil with an external NATS
	nc       *nats.Conn
	js       jetstream.JetStream
	brokers  map[string]bool // "namespace/name"
	triggers []*dispatcher
	m        *metrics
	mux      *http.ServeMux

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  atomic.Bool
	closed atomic.Bool
}

// New opens the store (starting the embedded NATS server when there is a
// data directory), creates the stream and one durable consumer per trigger,
// and starts delivering. Events accepted before a crash and not yet
// delivered are delivered now.
func New(ctx context.Context, opts ...Option) (*Broker, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	b := &Broker{o: o, log: o.log, m: newMetrics(), brokers: map[string]bool{"default/default": true}}
	for _, n := range o.brokers {
		b.brokers[n] = true
	}
	var cfgs []triggerConfig
	seen := map[string]bool{}
	for _, tr := range o.triggers {
		c, err := compileTrigger(tr, o.delivery)
		if err != nil {
			return nil, fmt.Errorf("trigger %s/%s: %w", tr.Metadata.Namespace, tr.Metadata.Name, err)
		}
		if seen[c.key()] {
			return nil, fmt.Errorf("trigger %s is defined twice", c.key())
		}
		seen[c.key()] = true
		b.brokers[c.Namespace+"/"+c.Broker] = true
		cfgs = append(cfgs, c)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if err := b.openStore(ctx); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.startDispatchers(ctx, cfgs); err != nil {
		b.Close()
		return nil, err
	}
	b.mux = http.NewServeMux()
	b.mux.HandleFunc("POST /{namespace}/{broker}", b.ingress)
	b.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	b.mux.HandleFunc("GET /readyz", b.readyz)
	b.mux.Handle("GET /metrics", promhttp.HandlerFor(b.m.reg, promhttp.HandlerOpts{}))
	b.ready.Store(true)
	b.log.Info().Int("triggers", len(cfgs)).Strs("brokers", b.brokerNames()).Msg("broker ready")
	return b, nil
}

func (b *Broker) brokerNames() []string {
	var out []string
	for k := range b.brokers {
		out = append(out, k)
	}
	return out
}

// Handler serves the ingress (POST /{namespace}/{broker}), /healthz,
// /readyz and /metrics. The connection limits and timeouts Serve applies
// (WithReadTimeout, WithMaxConns, ...) are then the embedding server's to
// set: http.Server's ReadHeaderTimeout, ReadTimeout, MaxHeaderBytes.
func (b *Broker) Handler() http.Handler { return b.mux }

func (b *Broker) readyz(w http.ResponseWriter, _ *http.Request) {
	if !b.isReady() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (b *Broker) isReady() bool {
	return b.ready.Load() && !b.closed.Load() && b.nc != nil && b.nc.IsConnected()
}

func (b *Broker) openStore(ctx context.Context) error {
	o := b.o
	if o.dataDir != "" {
		srv, err := server.NewServer(&server.Options{
			ServerName: "vp-broker",
			JetStream:  true,
			StoreDir:   o.dataDir,
			DontListen: true,
			NoSigs:     true,
			NoLog:      true,
			SyncAlways: o.syncAlways,
			MaxPayload: int32(o.maxBytes + 64<<10),
		})
		if err != nil {
			return fmt.Errorf("starting embedded NATS: %w", err)
		}
		go srv.Start()
		if !srv.ReadyForConnections(30 * time.Second) {
			srv.Shutdown()
			return errors.New("starting embedded NATS: not ready within 30s")
		}
		b.srv = srv
		nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("vp-broker"))
		if err != nil {
			return fmt.Errorf("connecting to embedded NATS: %w", err)
		}
		b.nc = nc
	} else {
		nc, err := nats.Connect(o.natsURL, nats.Name("vp-broker"), nats.MaxReconnects(-1))
		if err != nil {
			return fmt.Errorf("connecting to NATS at %s: %w", o.natsURL, err)
		}
		b.nc = nc
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("opening JetStream: %w", err)
	}
	b.js = js
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        streamName,
		Description: "Vision Platform local broker events",
		Subjects:    []string{subjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.InterestPolicy,
		Duplicates:  o.dedupWindow,
		MaxMsgSize:  int32(o.maxBytes + 64<<10),
	})
	if err != nil {
		return fmt.Errorf("creating stream %s: %w", streamName, err)
	}
	return nil
}

func subjectFor(namespace, broker string) string {
	return subjectPrefix + namespace + "." + broker
}

func consumerName(c triggerConfig) string {
	return consumerPrefix + c.Namespace + "_" + c.Name
}

// msgID is the de-duplication key of an event in one broker: its source
// and id, hashed so any characters are safe in a header.
func msgID(namespace, broker, source, id string) string {
	h := sha256.New()
	for _, s := range []string{namespace, broker, source, id} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:20])
}

func (b *Broker) startDispatchers(ctx context.Context, cfgs []triggerConfig) error {
	stream, err := b.js.Stream(ctx, streamName)
	if err != nil {
		return fmt.Errorf("opening stream: %w", err)
	}
	want := map[string]bool{}
	for _, c := range cfgs {
		want[consumerName(c)] = true
	}
	// Triggers removed from the file: their consumers would hold messages
	// forever under interest retention.
	names := stream.ConsumerNames(ctx)
	for n := range names.Name() {
		if strings.HasPrefix(n, consumerPrefix) && !want[n] {
			if err := stream.DeleteConsumer(ctx, n); err != nil {
				return fmt.Errorf("deleting consumer of removed trigger %s: %w", n, err)
			}
			b.log.Info().Str("consumer", n).Msg("removed consumer of a trigger no longer configured")
		}
	}
	for _, c := range cfgs {
		d, err := newDispatcher(ctx, b, stream, c)
		if err != nil {
			return err
		}
		b.triggers = append(b.triggers, d)
	}
	for _, d := range b.triggers {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			d.run(b.ctx)
		}()
	}
	return nil
}

// Close stops delivering, waits for deliveries in flight (up to 10 s) and
// closes the store. Unacknowledged events stay stored for the next start.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.ready.Store(false)
	if b.cancel != nil {
		b.cancel()
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.log.Warn().Msg("deliveries still in flight at close; they will be redelivered")
	}
	if b.nc != nil {
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	return nil
}

// splitBroker splits "namespace/name".
func splitBroker(s string) (string, string, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || !dnsLabelRE.MatchString(ns) || !dnsLabelRE.MatchString(name) {
		return "", "", fmt.Errorf("broker %q is not namespace/name", s)
	}
	return ns, name, nil
}
