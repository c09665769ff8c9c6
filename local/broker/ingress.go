package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
)

// Extension attributes the broker sets, as Knative's does.
const (
	ExtTTL         = "knativebrokerttl"
	ExtArrivalTime = "knativearrivaltime"
	ExtErrorDest   = "knativeerrordest"
	ExtErrorCode   = "knativeerrorcode"
	ExtErrorData   = "knativeerrordata"
	// DefaultTTL is the hop budget an event gets at the ingress.
	DefaultTTL = 255
)

const batchMediaType = "application/cloudevents-batch+json"

// ErrorBody is the JSON body of every 4xx/5xx the ingress answers.
type ErrorBody struct {
	Error  string              `json:"error"`
	Fields []events.FieldError `json:"fields,omitempty"`
}

// WriteError answers with code and an ErrorBody: the JSON error shape of
// every HTTP endpoint of the platform.
func WriteError(w http.ResponseWriter, code int, msg string, fields ...events.FieldError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(ErrorBody{Error: msg, Fields: fields})
}

func (b *Broker) ingress(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("broker")
	if r.ContentLength > b.o.maxBytes {
		b.reply(w, b.tooLarge(ns+"/"+name, r.ContentLength))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.o.maxBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			b.reply(w, b.tooLarge(ns+"/"+name, -1))
			return
		}
		b.reply(w, b.refuse(ns+"/"+name, http.StatusBadRequest, "reading request body: "+err.Error()))
		return
	}
	b.reply(w, b.accept(r.Context(), ns, name, r.Header, body))
}

// answer is the ingress's response: a status and, for errors, a body.
type answer struct {
	code int
	body *ErrorBody
}

func (b *Broker) reply(w http.ResponseWriter, a answer) {
	if a.body == nil {
		w.WriteHeader(a.code)
		return
	}
	WriteError(w, a.code, a.body.Error, a.body.Fields...)
}

func (b *Broker) tooLarge(key string, n int64) answer {
	msg := fmt.Sprintf("request body is over the limit of %d bytes", b.o.maxBytes)
	if n >= 0 {
		msg = fmt.Sprintf("request body of %d bytes is over the limit of %d", n, b.o.maxBytes)
	}
	return b.refuse(key, http.StatusRequestEntityTooLarge, msg)
}

// refuse counts a refused ingress request and makes its answer.
func (b *Broker) refuse(key string, code int, msg string, fields ...events.FieldError) answer {
	b.m.rejected.WithLabelValues(b.brokerLabel(key), strconv.Itoa(code)).Inc()
	return answer{code, &ErrorBody{Error: msg, Fields: fields}}
}

// unknownBroker is the broker label of requests to no broker.
const unknownBroker = "unknown"

// brokerLabel is the broker label of an ingress metric: "namespace/name"
// of a broker that exists, and "unknown" for any other path, so that
// requests to made-up paths cannot grow /metrics.
func (b *Broker) brokerLabel(key string) string {
	if b.brokers[key] {
		return key
	}
	return unknownBroker
}

// accept is the ingress behind either HTTP server: it decodes, checks and
// stores the events of one request.
func (b *Broker) accept(ctx context.Context, ns, name string, hdr http.Header, body []byte) answer {
	key := ns + "/" + name
	if !b.brokers[key] {
		return b.refuse(key, http.StatusNotFound, fmt.Sprintf("%v: %s", ErrUnknownBroker, key))
	}
	if b.closed.Load() {
		return answer{http.StatusServiceUnavailable, &ErrorBody{Error: ErrClosed.Error()}}
	}
	var msgs []*nats.Msg
	var fields []events.FieldError
	var err error
	fast := false
	if !b.o.validate || !strings.HasPrefix(hdr.Get(hdrType), events.Prefix) {
		var h nats.Header
		if h, fields, fast = binaryHeaders(hdr, body); fast && len(fields) == 0 {
			msgs = []*nats.Msg{{Header: h, Data: body}}
		}
	}
	if !fast {
		var evs []event.Event
		var batch bool
		evs, batch, fields, err = ParseRequest(hdr, body)
		if err == nil {
			fields = b.validate(evs, batch)
		}
		if err == nil && len(fields) == 0 {
			msgs = make([]*nats.Msg, len(evs))
			for i := range evs {
				m := &nats.Msg{Header: make(nats.Header, 12)}
				if m.Data, err = encodeEvent(&evs[i], m.Header); err != nil {
					return b.refuse(key, http.StatusBadRequest, fmt.Sprintf("encoding event %s: %v", evs[i].ID(), err))
				}
				msgs[i] = m
			}
		}
	}
	if err != nil || len(fields) > 0 {
		msg := "invalid event"
		if err != nil {
			msg = err.Error()
		}
		return b.refuse(key, http.StatusBadRequest, msg, fields...)
	}
	stored, err := b.publish(ctx, ns, name, msgs)
	if err != nil {
		b.log.Error().Err(err).Str("broker", key).Msg("storing events")
		return answer{http.StatusServiceUnavailable, &ErrorBody{Error: "storing events: " + err.Error()}}
	}
	if b.log.GetLevel() <= zerolog.DebugLevel {
		for i, m := range msgs {
			l := b.log.Debug().Str("broker", key).Str("id", m.Header.Get(hdrID)).Str("type", m.Header.Get(hdrType)).Str("source", m.Header.Get(hdrSource))
			if !stored[i] {
				l.Msg("duplicate event dropped")
			} else {
				l.Msg("event accepted")
			}
		}
	}
	return answer{code: http.StatusAccepted}
}

// validate checks each event against the CloudEvents spec (and the
// vocabulary when configured), naming fields as "[i].field" in a batch.
func (b *Broker) validate(evs []event.Event, batch bool) []events.FieldError {
	var out []events.FieldError
	for i, e := range evs {
		var fs []events.FieldError
		if b.o.validate && strings.HasPrefix(e.Type(), events.Prefix) {
			var ve *events.ValidationError
			if err := events.Validate(e); errors.As(err, &ve) {
				fs = ve.Fields
			} else if err == nil && b.o.check != nil {
				fs = b.o.check(e)
			}
			fs = append(fs, headerProblems(e)...)
		} else {
			fs = checkEvent(e)
		}
		for _, f := range fs {
			if batch {
				f.Field = fmt.Sprintf("[%d].%s", i, f.Field)
			}
			out = append(out, f)
		}
	}
	return out
}

// ParseRequest decodes the CloudEvents in an HTTP request: binary mode
// (ce-* headers), structured mode (application/cloudevents+json) or batch
// mode (application/cloudevents-batch+json). A decoding error names the
// attribute it is about ("[i].attribute" in a batch), or "body".
func ParseRequest(h http.Header, body []byte) (evs []event.Event, batch bool, fields []events.FieldError, err error) {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt == batchMediaType {
		var raws []json.RawMessage
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, true, []events.FieldError{{Field: "body", Reason: "a batch must be a JSON array of events: " + err.Error()}}, errors.New("invalid batch")
		}
		if len(raws) == 0 {
			return nil, true, []events.FieldError{{Field: "body", Reason: "the batch is empty"}}, errors.New("invalid batch")
		}
		out := make([]event.Event, len(raws))
		for i, raw := range raws {
			e, err := decodeStructured(raw)
			if err != nil {
				fields = append(fields, decodeFieldError(fmt.Sprintf("[%d].", i), err))
				continue
			}
			out[i] = *e
		}
		if len(fields) > 0 {
			return nil, true, fields, errors.New("invalid event in batch; nothing was accepted")
		}
		return out, true, nil, nil
	}
	msg := cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body)))
	var e *event.Event
	switch msg.ReadEncoding() {
	case binding.EncodingBinary:
		e, err = decodeBinary(h, body)
	case binding.EncodingStructured:
		e, err = decodeStructured(body)
	default:
		return nil, false, []events.FieldError{{Field: "specversion", Reason: "no ce-specversion header (binary mode) and Content-Type is not application/cloudevents+json or " + batchMediaType}}, errors.New("not a CloudEvent")
	}
	if err != nil {
		return nil, false, []events.FieldError{decodeFieldError("", err)}, errors.New("invalid event")
	}
	return []event.Event{*e}, false, nil, nil
}

// decodeFieldError is the field error of a decoding error, its field
// prefixed in a batch.
func decodeFieldError(prefix string, err error) events.FieldError {
	reason := err.Error()
	if ae, ok := errors.AsType[*attrError](err); ok {
		reason = ae.Err.Error()
	}
	return events.FieldError{Field: prefix + fieldOf(err), Reason: reason}
}

// checkEvent lists what keeps e from being stored: CloudEvents spec
// violations, data that its JSON content type says is JSON but is not, and
// a hop TTL that is not an integer.
func checkEvent(e event.Event) []events.FieldError {
	var fs []events.FieldError
	events.ContextErrors(e, &fs)
	fs = append(fs, headerProblems(e)...)
	if isJSON(e.DataContentType()) && len(e.Data()) > 0 && !e.DataBase64 && !json.Valid(e.Data()) {
		fs = append(fs, events.FieldError{Field: "data", Reason: "datacontenttype " + e.DataContentType() + " says JSON, but data is not valid JSON"})
	}
	if v, ok := e.Extensions()[ExtTTL]; ok {
		if _, err := ttlOf(v); err != nil {
			fs = append(fs, events.FieldError{Field: ExtTTL, Reason: err.Error()})
		}
	}
	return fs
}

// headerProblems lists the string attributes of e that the broker could
// not store and deliver unchanged as HTTP header values (see
// headerValueProblem).
func headerProblems(e event.Event) []events.FieldError {
	var fs []events.FieldError
	events.StringAttributes(e, func(name, v string) {
		if p := headerValueProblem(v); p != "" {
			fs = append(fs, events.FieldError{Field: name, Reason: p})
		}
	})
	return fs
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json"))
}

func ttlOf(v any) (int, error) {
	switch t := v.(type) {
	case int32:
		return int(t), nil
	case int:
		return t, nil
	case string:
		n, err := strconv.Atoi(t)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", t)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%v is not an integer", v)
}

// publish stores encoded events (see encodeEvent) in the broker's subject
// and waits until JetStream has them. stored[i] is false for a duplicate of
// an event already stored, or an event dropped for an exhausted hop TTL.
func (b *Broker) publish(ctx context.Context, ns, name string, msgs []*nats.Msg) ([]bool, error) {
	key := ns + "/" + name
	subject := subjectFor(ns, name)
	now := []string{time.Now().UTC().Format(time.RFC3339Nano)}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	stored := make([]bool, len(msgs))
	for i, m := range msgs {
		ttl := DefaultTTL
		if v := m.Header[hdrTTL]; len(v) > 0 {
			ttl, _ = ttlOf(v[0])
		}
		if ttl <= 0 {
			b.log.Warn().Str("broker", key).Str("id", m.Header.Get(hdrID)).Str("type", m.Header.Get(hdrType)).Msg("event with exhausted TTL dropped")
			b.m.dropped.WithLabelValues("", "ttl_exhausted").Inc()
			continue
		}
		m.Subject = subject
		m.Header[hdrTTL] = []string{strconv.Itoa(ttl)}
		m.Header[hdrArrivalTime] = now
		m.Header[jetstream.MsgIDHeader] = []string{msgID(ns, name, m.Header.Get(hdrSource), m.Header.Get(hdrID))}
		if len(msgs) == 1 {
			ack, err := b.js.PublishMsg(ctx, m)
			if err != nil {
				return nil, err
			}
			stored[0] = !ack.Duplicate
			b.count(key, stored[0])
			return stored, nil
		}
		f, err := b.js.PublishMsgAsync(m)
		if err != nil {
			return nil, err
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			stored[i] = !ack.Duplicate
			b.count(key, stored[i])
		case err := <-f.Err():
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return stored, nil
}

func (b *Broker) count(key string, stored bool) {
	if stored {
		b.m.received.WithLabelValues(key).Inc()
	} else {
		b.m.duplicates.WithLabelValues(key).Inc()
	}
}
