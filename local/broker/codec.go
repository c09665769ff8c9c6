package broker

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
)

// Events are stored as CloudEvents in binary mode, as Knative's Kafka
// broker stores them: attributes as "Ce-*" message headers, datacontenttype
// as Content-Type, the data as the message body. Delivery then copies
// headers and body into the HTTP request without decoding the event.

const hdrContentType = "Content-Type"

var (
	hdrSpecVersion = http.CanonicalHeaderKey("ce-specversion")
	hdrID          = http.CanonicalHeaderKey("ce-id")
	hdrSource      = http.CanonicalHeaderKey("ce-source")
	hdrType        = http.CanonicalHeaderKey("ce-type")
	hdrSubject     = http.CanonicalHeaderKey("ce-subject")
	hdrTime        = http.CanonicalHeaderKey("ce-time")
	hdrDataSchema  = http.CanonicalHeaderKey("ce-dataschema")
	hdrTTL         = http.CanonicalHeaderKey("ce-" + ExtTTL)
	hdrArrivalTime = http.CanonicalHeaderKey("ce-" + ExtArrivalTime)
)

// encodeEvent puts e into a message's header and body.
func encodeEvent(e *event.Event, h nats.Header) ([]byte, error) {
	set := func(k, v string) { h[k] = []string{v} }
	set(hdrSpecVersion, e.SpecVersion())
	set(hdrID, e.ID())
	set(hdrSource, e.Source())
	set(hdrType, e.Type())
	if s := e.Subject(); s != "" {
		set(hdrSubject, s)
	}
	if t := e.Time(); !t.IsZero() {
		set(hdrTime, t.UTC().Format(time.RFC3339Nano))
	}
	if s := e.DataSchema(); s != "" {
		set(hdrDataSchema, s)
	}
	if ct := e.DataContentType(); ct != "" {
		set(hdrContentType, ct)
	}
	for k, v := range e.Extensions() {
		s, err := types.Format(v)
		if err != nil {
			return nil, fmt.Errorf("extension %s: %w", k, err)
		}
		set(http.CanonicalHeaderKey("ce-"+k), s)
	}
	return e.Data(), nil
}

// decodeEvent rebuilds the event of a stored message (for filters that
// need more than the headers, dead letters and logs).
func decodeEvent(h nats.Header, data []byte) (event.Event, error) {
	e := event.New(h.Get(hdrSpecVersion))
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		v := vs[0]
		switch k {
		case hdrSpecVersion:
		case hdrID:
			e.SetID(v)
		case hdrSource:
			e.SetSource(v)
		case hdrType:
			e.SetType(v)
		case hdrSubject:
			e.SetSubject(v)
		case hdrTime:
			t, err := types.ParseTime(v)
			if err != nil {
				return e, fmt.Errorf("stored time %q: %w", v, err)
			}
			e.SetTime(t)
		case hdrDataSchema:
			e.SetDataSchema(v)
		case hdrContentType:
			e.SetDataContentType(v)
		default:
			if name, ok := strings.CutPrefix(k, "Ce-"); ok {
				e.SetExtension(strings.ToLower(name), v)
			}
		}
	}
	if len(data) > 0 {
		e.DataEncoded = data
	}
	return e, nil
}
