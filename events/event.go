package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
)

// Option adjusts an event made by New.
type Option func(*event.Event) error

// WithID overrides the event id.
func WithID(id string) Option {
	return func(e *event.Event) error {
		if strings.TrimSpace(id) == "" {
			return errors.New("WithID: empty id")
		}
		e.SetID(id)
		return nil
	}
}

// WithTime sets the event time (default: now, UTC).
func WithTime(t time.Time) Option {
	return func(e *event.Event) error { e.SetTime(t.UTC()); return nil }
}

// WithSubject overrides the subject the payload implies.
func WithSubject(s string) Option {
	return func(e *event.Event) error { e.SetSubject(s); return nil }
}

// WithExtension sets a CloudEvent extension attribute.
func WithExtension(name string, value any) Option {
	return func(e *event.Event) error {
		if err := e.Context.SetExtension(name, value); err != nil {
			return fmt.Errorf("setting extension %q: %w", name, err)
		}
		return nil
	}
}

// New makes the CloudEvent for payload p from source. It sets type,
// dataschema, datacontenttype, the deterministic id where the payload has one
// (else a random UUIDv7), subject, time, jobid, and a traceparent that
// continues the trace in ctx (or starts one). The result passes Validate.
func New(ctx context.Context, source string, p Payload, opts ...Option) (event.Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	e.SetType(string(p.EventType()))
	e.SetSource(source)
	id := p.DeterministicID()
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	}
	e.SetID(id)
	if s := p.Subject(); s != "" {
		e.SetSubject(s)
	}
	e.SetTime(time.Now().UTC())
	e.SetDataSchema(p.EventType().SchemaURI())
	if err := e.SetData(ContentType, p); err != nil {
		return e, fmt.Errorf("encoding %s data: %w", p.EventType().Short(), err)
	}
	if j := p.JobID(); j != "" {
		e.SetExtension(ExtJobID, j)
	}
	e.SetExtension(ExtTraceparent, ChildTraceparent(TraceparentFrom(ctx)))
	for _, o := range opts {
		if err := o(&e); err != nil {
			return e, err
		}
	}
	if err := Validate(e); err != nil {
		return e, err
	}
	return e, nil
}

// Next makes the event that answers in: it continues in's trace and keeps
// its jobid when p has none of its own.
func Next(in event.Event, source string, p Payload, opts ...Option) (event.Event, error) {
	ctx := context.Background()
	if tp, ok := in.Extensions()[ExtTraceparent].(string); ok {
		ctx = ContextWithTraceparent(ctx, tp)
	}
	if p.JobID() == "" {
		if j, ok := in.Extensions()[ExtJobID].(string); ok && j != "" {
			opts = append([]Option{WithExtension(ExtJobID, j)}, opts...)
		}
	}
	return New(ctx, source, p, opts...)
}

// Decode validates e and returns its payload.
func Decode(e event.Event) (Payload, error) {
	if err := Validate(e); err != nil {
		return nil, err
	}
	p, _ := NewPayload(Type(e.Type()))
	_ = json.Unmarshal(e.Data(), p) // Validate decoded it already
	return p, nil
}

// DecodeInto validates e, checks that it is of p's type and decodes its data
// into p (a pointer to a payload struct).
func DecodeInto(e event.Event, p Payload) error {
	if Type(e.Type()) != p.EventType() {
		return &ValidationError{Fields: []FieldError{{Field: "type", Reason: fmt.Sprintf("want %s, got %q", p.EventType(), e.Type())}}}
	}
	if err := Validate(e); err != nil {
		return err
	}
	return json.Unmarshal(e.Data(), p)
}

// Validate checks e against the CloudEvents spec and, for a type of the
// vocabulary, the platform's rules: datacontenttype, dataschema, jobid,
// traceparent and every payload field. The error is a *ValidationError
// naming every bad field.
func Validate(e event.Event) error {
	f := newFields("")
	ContextErrors(e, f.errs)
	t := Type(e.Type())
	if !t.Known() {
		if strings.HasPrefix(e.Type(), Prefix) {
			f.add("type", "%q is not a type of the vocabulary", e.Type())
		}
		return f.err()
	}
	if ct := e.DataContentType(); ct != ContentType && !strings.HasPrefix(ct, ContentType+";") {
		f.add("datacontenttype", "must be %s, got %q", ContentType, ct)
	}
	if s := e.DataSchema(); s != "" && s != t.SchemaURI() {
		f.add("dataschema", "must be %s, got %q", t.SchemaURI(), s)
	}
	if tp, ok := e.Extensions()[ExtTraceparent]; ok {
		if s, _ := tp.(string); !ValidTraceparent(s) {
			f.add(ExtTraceparent, "%q is not a W3C traceparent", tp)
		}
	}
	p, _ := NewPayload(t)
	dec := json.NewDecoder(strings.NewReader(string(e.Data())))
	dec.DisallowUnknownFields()
	if len(e.Data()) == 0 {
		f.add("data", "required")
		return f.err()
	}
	if err := dec.Decode(p); err != nil {
		field, reason := jsonReason(err)
		f.at("data").add(field, "%s", reason)
		return f.err()
	}
	checkTags(reflect.ValueOf(p).Elem(), f.at("data"))
	p.validate(f.at("data"))
	if j := p.JobID(); j != "" {
		if got, _ := e.Extensions()[ExtJobID].(string); got != j {
			f.add(ExtJobID, "must equal the payload's job id %q, got %q", j, got)
		}
	}
	return f.err()
}

// ContextErrors appends the CloudEvents spec violations of e's context.
func ContextErrors(e event.Event, out *[]FieldError) {
	var ve event.ValidationError
	if err := e.Validate(); errors.As(err, &ve) {
		for k, v := range ve {
			*out = append(*out, FieldError{Field: k, Reason: v.Error()})
		}
	} else if err != nil {
		*out = append(*out, FieldError{Field: "event", Reason: err.Error()})
	}
}

// jsonReason turns a decoding error into the field it is about (relative
// to data, "" for data itself) and a reason.
func jsonReason(err error) (string, string) {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return ute.Field, fmt.Sprintf("cannot use JSON %s as %s", ute.Value, ute.Type)
	}
	if m := unknownFieldRE.FindStringSubmatch(err.Error()); m != nil {
		return m[1], "unknown field"
	}
	return "", "not valid JSON: " + err.Error()
}

var unknownFieldRE = regexp.MustCompile(`unknown field "([^"]*)"`)
