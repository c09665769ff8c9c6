package emit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
)

// Options describe one event to send.
type Options struct {
	Broker      string
	Type        string
	Source      string
	Subject     string
	ID          string
	Data        string
	DataName    string // where Data came from, for errors ("job.json", "stdin"; default "data")
	ContentType string
	Extensions  []string // name=value
	Structured  bool
}

var extNameRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// Build makes the event. For a type of the vocabulary the data must be a
// valid payload; the constructors then set id, subject, jobid, dataschema
// and traceparent unless the options override them. Errors name the
// input and field (for JSON data, the line and column); a bad Type or
// Extensions value is a *FieldError.
func Build(ctx context.Context, o Options) (event.Event, error) {
	var e event.Event
	if o.Type == "" {
		return e, &FieldError{Field: "Type", Reason: "required"}
	}
	name := o.DataName
	if name == "" {
		name = "data"
	}
	var opts []events.Option
	if o.ID != "" {
		opts = append(opts, events.WithID(o.ID))
	}
	if o.Subject != "" {
		opts = append(opts, events.WithSubject(o.Subject))
	}
	for _, kv := range o.Extensions {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !extNameRE.MatchString(k) {
			return e, &FieldError{Field: "Extensions", Value: kv, Reason: "want name=value with a lower-case alphanumeric name"}
		}
		opts = append(opts, events.WithExtension(k, v))
	}
	if t := events.Type(o.Type); t.Known() {
		p, _ := events.NewPayload(t)
		dec := json.NewDecoder(strings.NewReader(o.Data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(p); err != nil {
			return e, fmt.Errorf("%s: %s", name, describeJSONError(o.Data, err))
		}
		ev, err := events.New(ctx, o.Source, p, opts...)
		if err != nil {
			return e, fmt.Errorf("%s: %w", name, err)
		}
		return ev, nil
	}
	e = event.New()
	e.SetType(o.Type)
	e.SetSource(o.Source)
	e.SetID(uuid.Must(uuid.NewV7()).String())
	e.SetTime(time.Now().UTC())
	if o.Data != "" {
		ct := o.ContentType
		if ct == "" {
			ct = "application/json"
		}
		if strings.Contains(ct, "json") && !json.Valid([]byte(o.Data)) {
			var v any
			return e, fmt.Errorf("%s: %s", name, describeJSONError(o.Data, json.Unmarshal([]byte(o.Data), &v)))
		}
		if err := e.SetData(ct, []byte(o.Data)); err != nil {
			return e, err
		}
	}
	for _, opt := range opts {
		if err := opt(&e); err != nil {
			return e, err
		}
	}
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("invalid event: %w", err)
	}
	return e, nil
}

// describeJSONError places a JSON error at its line and column.
func describeJSONError(data string, err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	off := int64(-1)
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return err.Error()
	}
	line, col := 1, 1
	for i, c := range data {
		if int64(i) >= off-1 {
			break
		}
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// HTTPError is a refusal from the ingress, or a delivery that failed: the
// sender's error, with the last status and body.
type HTTPError = sender.Error

// Send posts e to a broker ingress URL with the platform's sender (its one
// retry policy), in binary mode unless structured.
func Send(ctx context.Context, url string, e event.Event, structured bool) error {
	var opts []sender.Option
	if structured {
		opts = append(opts, sender.WithStructured())
	}
	s, err := sender.New(url, opts...)
	if err != nil {
		return err
	}
	return s.Send(ctx, e)
}
