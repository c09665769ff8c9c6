package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/vision-platform/vp/events/filter"
)

// dispatcher delivers the events of one trigger from its durable consumer,
// with the trigger's Knative delivery spec: retries, backoff, timeout and
// dead-letter sink as Knative's broker applies them, the attempts counted
// by JetStream redeliveries. This retry is the broker's own, distinct from
// the platform's event sender (events/sender), whose retry policy covers
// posting an event to an ingress: an event a function emits goes through
// the sender's until the ingress has stored it (202), then through each
// matching trigger's to its subscriber.
//
// Each dispatcher has an HTTP client of its own, with as many connections
// per host as its parallelism: its deliveries never wait on another
// trigger's, and never fail for want of a connection.
type dispatcher struct {
	b        *Broker
	cfg      triggerConfig
	cons     jetstream.Consumer
	log      zerolog.Logger
	sem      chan struct{}
	client   *fasthttp.Client
	matchAll bool
	m        triggerMetrics
}

func newDispatcher(ctx context.Context, b *Broker, stream jetstream.Stream, c triggerConfig) (*dispatcher, error) {
	name := consumerName(c)
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "trigger " + c.key() + " -> " + c.Subscriber,
		FilterSubject: subjectFor(c.Namespace, c.Broker),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Deliveries in flight report progress every AckWait/2; a broker
		// that dies mid-delivery has the event redelivered after AckWait.
		AckWait:       b.o.ackWait,
		MaxDeliver:    -1,
		MaxAckPending: 10000,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	}
	cons, err := stream.Consumer(ctx, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = stream.CreateConsumer(ctx, cfg)
	} else if err == nil {
		// Keep the consumer's position; update what may change.
		cfg.DeliverPolicy = cons.CachedInfo().Config.DeliverPolicy
		cfg.OptStartSeq = cons.CachedInfo().Config.OptStartSeq
		cfg.OptStartTime = cons.CachedInfo().Config.OptStartTime
		cons, err = stream.UpdateConsumer(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("creating consumer for trigger %s: %w", c.key(), err)
	}
	return &dispatcher{
		b:        b,
		cfg:      c,
		cons:     cons,
		log:      b.log.With().Str("trigger", c.key()).Logger(),
		sem:      make(chan struct{}, b.o.parallelism),
		client:   newDeliveryClient(b.o),
		matchAll: filter.MatchesAll(c.Matcher),
		m:        b.m.forTrigger(c.key()),
	}, nil
}

// newDeliveryClient is the HTTP client of one dispatcher. Its semaphore
// bounds the dispatcher's requests in flight, to the subscriber and the
// dead-letter sink together, to the parallelism, so as many connections
// per host always suffice; should one be busy all the same, a request waits
// for it within its delivery timeout instead of failing at once.
func newDeliveryClient(o *options) *fasthttp.Client {
	return &fasthttp.Client{
		Name:                     "vp-broker",
		NoDefaultUserAgentHeader: true,
		MaxConnsPerHost:          o.parallelism,
		MaxConnWaitTimeout:       MaxDeliveryDuration,
		MaxIdleConnDuration:      90 * time.Second,
		DisablePathNormalizing:   true,
		MaxResponseBodySize:      int(o.maxBytes),
		Dial:                     (&fasthttp.TCPDialer{}).Dial,
	}
}

func (d *dispatcher) run(ctx context.Context) {
	it, err := d.cons.Messages(jetstream.PullMaxMessages(d.b.o.parallelism))
	if err != nil {
		d.log.Error().Err(err).Msg("starting consumer")
		return
	}
	go func() { <-ctx.Done(); it.Stop() }()
	inflight := make(chan struct{}, d.b.o.parallelism)
	defer func() {
		for i := 0; i < cap(inflight); i++ {
			inflight <- struct{}{} // wait for every delivery to end
		}
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return
			}
			d.log.Warn().Err(err).Msg("fetching events")
			continue
		}
		inflight <- struct{}{}
		go func() {
			defer func() { <-inflight }()
			d.handle(ctx, msg)
		}()
	}
}

// outcome of one attempt at the subscriber.
type outcome struct {
	code     int    // HTTP status, 0 when there was no response
	body     []byte // response body, for the dead-letter extensions
	err      error  // transport error
	tooLarge bool   // the response body was over the size limit and not read
	reply    *event.Event
}

func (o outcome) ok() bool { return o.err == nil && o.code >= 200 && o.code < 300 }

// retryable follows Knative: 5xx, 404, 408, 409, 429 and no response.
func (o outcome) retryable() bool {
	if o.err != nil {
		return true
	}
	switch {
	case o.code >= 500, o.code == 404, o.code == 408, o.code == 409, o.code == 429:
		return true
	}
	return false
}

func (d *dispatcher) handle(ctx context.Context, msg jetstream.Msg) {
	h := msg.Headers()
	if !d.matches(h, msg.Data()) {
		_ = msg.Ack()
		return
	}
	meta, err := msg.Metadata()
	if err != nil {
		d.log.Error().Err(err).Msg("reading message metadata")
		_ = msg.Nak()
		return
	}
	attempt := int(meta.NumDelivered) // 1 for the first attempt
	defer d.keepAlive(msg)()
	ttl, _ := ttlOf(h.Get(hdrTTL))
	out := d.send(ctx, d.cfg.Subscriber, h, msg.Data(), nil)
	if ctx.Err() != nil {
		_ = msg.Nak() // shutting down: delivered after restart
		return
	}
	if out.ok() {
		if out.tooLarge {
			// Acknowledged all the same: Knative does not deliver an event
			// again that its subscriber accepted.
			d.eventLog(zerolog.WarnLevel, h, attempt).Int("code", out.code).Int64("limit", d.b.o.maxBytes).Msg("reply body over the size limit; discarded")
			d.m.tooLarge.Inc()
		} else if out.reply == nil && len(bytes.TrimSpace(out.body)) > 0 {
			d.eventLog(zerolog.InfoLevel, h, attempt).Int("bytes", len(out.body)).Msg("reply is not a CloudEvent; ignored")
			d.m.notAnEvent.Inc()
		}
		if err := d.handleReply(ctx, h, out.reply, ttl); err != nil {
			d.eventLog(zerolog.WarnLevel, h, attempt).Err(err).Msg("storing reply failed; the event will be delivered again")
			d.m.retried.Inc()
			_ = msg.NakWithDelay(d.cfg.Delivery.Backoff(attempt))
			return
		}
		_ = msg.Ack()
		d.m.delivered.Inc()
		d.m.latency.Observe(time.Since(meta.Timestamp).Seconds())
		if d.log.GetLevel() <= zerolog.DebugLevel {
			d.eventLog(zerolog.DebugLevel, h, attempt).Int("code", out.code).Msg("delivered")
		}
		return
	}
	if out.retryable() && attempt <= d.cfg.Delivery.Retry {
		delay := d.cfg.Delivery.Backoff(attempt)
		d.eventLog(zerolog.InfoLevel, h, attempt).Int("code", out.code).AnErr("cause", out.err).Dur("backoff", delay).Msg("delivery failed; will retry")
		d.m.retried.Inc()
		_ = msg.NakWithDelay(delay)
		return
	}
	d.deadLetter(ctx, msg, attempt, out)
}

// matches applies the trigger's filter; an empty filter needs no decoding.
func (d *dispatcher) matches(h nats.Header, data []byte) bool {
	if d.matchAll {
		return true
	}
	e, err := decodeEvent(h, data)
	if err != nil {
		d.log.Error().Err(err).Str("id", h.Get(hdrID)).Msg("undecodable stored event does not match")
		return false
	}
	return d.cfg.Matcher.Match(e)
}

func (d *dispatcher) eventLog(lvl zerolog.Level, h nats.Header, attempt int) *zerolog.Event {
	return d.log.WithLevel(lvl).Str("id", h.Get(hdrID)).Str("type", h.Get(hdrType)).Str("source", h.Get(hdrSource)).Int("attempt", attempt)
}

// keepAlive tells JetStream the delivery of msg is still in progress every
// half ack wait, until the returned stop is called.
func (d *dispatcher) keepAlive(msg jetstream.Msg) (stop func()) {
	every := d.b.o.ackWait / 2
	var t *time.Timer
	var mu sync.Mutex
	stopped := false
	t = time.AfterFunc(every, func() {
		_ = msg.InProgress()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(every)
		}
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// deadLetter sends the event to the trigger's dead-letter sink with
// Knative's error extensions, retrying with the trigger's delivery; without
// a sink, or when the sink keeps failing, the event is dropped with a log
// line.
func (d *dispatcher) deadLetter(ctx context.Context, msg jetstream.Msg, attempt int, out outcome) {
	h := msg.Headers()
	if d.cfg.Delivery.DeadLetter == "" {
		d.eventLog(zerolog.WarnLevel, h, attempt).Int("code", out.code).AnErr("cause", out.err).Msg("delivery failed; no dead-letter sink, event dropped")
		d.m.droppedNoDLS.Inc()
		_ = msg.Ack()
		return
	}
	extra := http.Header{}
	extra.Set("Ce-"+ExtErrorDest, d.cfg.Subscriber)
	if out.code != 0 {
		extra.Set("Ce-"+ExtErrorCode, fmt.Sprint(out.code))
	}
	data := out.body
	if out.err != nil && len(data) == 0 {
		data = []byte(out.err.Error())
	}
	if len(data) > 0 {
		enc := base64.StdEncoding.EncodeToString(data)
		if len(enc) > 1024 {
			enc = enc[:1024]
		}
		extra.Set("Ce-"+ExtErrorData, enc)
	}
	for try := 0; ; try++ {
		res := d.send(ctx, d.cfg.Delivery.DeadLetter, h, msg.Data(), extra)
		if res.ok() {
			d.eventLog(zerolog.WarnLevel, h, attempt).Int("code", out.code).AnErr("cause", out.err).Msg("delivery failed; sent to dead-letter sink")
			d.m.deadLettered.Inc()
			_ = msg.Ack()
			return
		}
		if !res.retryable() || try >= d.cfg.Delivery.Retry {
			d.eventLog(zerolog.ErrorLevel, h, attempt).Int("code", res.code).AnErr("cause", res.err).Msg("dead-letter sink failed too; event dropped")
			d.m.droppedDLSFailed.Inc()
			_ = msg.Ack()
			return
		}
		select {
		case <-time.After(d.cfg.Delivery.Backoff(try + 1)):
		case <-ctx.Done():
			_ = msg.Nak()
			return
		}
	}
}

// send POSTs a stored event in binary mode, with Prefer: reply and the
// extra headers, and reads the answer. The hop TTL stays inside the broker,
// as in Knative. fasthttp writes and reads on the calling goroutine, which
// saves the two goroutine hand-offs per request of net/http's transport.
func (d *dispatcher) send(ctx context.Context, url string, stored nats.Header, data []byte, extra http.Header) outcome {
	d.sem <- struct{}{}
	defer func() { <-d.sem }()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(http.MethodPost)
	for k, v := range stored {
		if k == hdrTTL || k == jetstream.MsgIDHeader || len(v) == 0 {
			continue
		}
		req.Header.Set(k, v[0])
	}
	for k, v := range extra {
		req.Header.Set(k, v[0])
	}
	req.Header.Set("Prefer", "reply")
	req.SetBodyRaw(data)
	timeout := d.cfg.Delivery.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if err := d.client.DoTimeout(req, resp, timeout); err != nil {
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			// The status line and headers were read, the body was not: the
			// answer stands on its status, and a 2xx is a success.
			return outcome{code: resp.StatusCode(), tooLarge: true}
		}
		return outcome{err: err}
	}
	out := outcome{code: resp.StatusCode()}
	body := resp.Body()
	if int64(len(body)) > d.b.o.maxBytes {
		body = body[:d.b.o.maxBytes]
	}
	out.body = append([]byte(nil), body...)
	if out.ok() && (len(body) > 0 || len(resp.Header.Peek(hdrSpecVersion)) > 0) {
		h := http.Header{}
		for k, v := range resp.Header.All() {
			h.Add(string(k), string(v))
		}
		msg := cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(out.body)))
		if msg.ReadEncoding() != binding.EncodingUnknown {
			if r, err := binding.ToEvent(ctx, msg); err == nil {
				out.reply = r
			} else {
				out.body = []byte("invalid CloudEvent in reply: " + err.Error())
			}
		}
	}
	return out
}

// handleReply puts a subscriber's reply event back into the broker with
// the hop TTL decremented; at 0 it is dropped. A non-empty answer that is
// not an event is ignored with a log line.
func (d *dispatcher) handleReply(ctx context.Context, h nats.Header, reply *event.Event, ttl int) error {
	if reply == nil {
		return nil
	}
	log := d.log.With().Str("id", h.Get(hdrID)).Str("type", h.Get(hdrType)).Logger()
	if err := reply.Validate(); err != nil {
		log.Warn().Err(err).Msg("reply is not a valid CloudEvent; ignored")
		d.m.notAnEvent.Inc()
		return nil
	}
	if ttl-1 <= 0 {
		log.Warn().Str("reply_id", reply.ID()).Str("reply_type", reply.Type()).Msg("reply dropped: TTL exhausted")
		d.m.ttlExhausted.Inc()
		return nil
	}
	reply.SetExtension(ExtTTL, int32(ttl-1))
	m := &nats.Msg{Header: make(nats.Header, 12)}
	var err error
	if m.Data, err = encodeEvent(reply, m.Header); err != nil {
		log.Warn().Err(err).Msg("reply cannot be stored; ignored")
		d.m.notAnEvent.Inc()
		return nil
	}
	if _, err := d.b.publish(ctx, d.cfg.Namespace, d.cfg.Broker, []*nats.Msg{m}); err != nil {
		return err
	}
	d.m.ingested.Inc()
	log.Debug().Str("reply_id", reply.ID()).Str("reply_type", reply.Type()).Msg("reply stored")
	return nil
}
