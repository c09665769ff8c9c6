// Package emit builds CloudEvents from loose input (a CLI's flags, another
// system's request) and sends them to a broker ingress.
package emit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"

	"github.com/vision-platform/vp/events"
)

// Options describe one event to send.
type Options struct {
	Broker      string
	Type        string
	Source      string
	Subject     string
	ID          string
	Data        string
	DataName    string // where Data came from, for errors ("job.json", "stdin")
	ContentType string
	Extensions  []string // name=value
	Structured  bool
}

var extNameRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// Build makes the event. For a type of the vocabulary the data must be a
// valid payload; the constructors then set id, subject, jobid, dataschema
// and traceparent unless the options override them. Errors name the
// input and field (for JSON data, the line and column).
func Build(ctx context.Context, o Options) (event.Event, error) {
	var e event.Event
	if o.Type == "" {
		return e, errors.New("--type is required")
	}
	name := o.DataName
	if name == "" {
		name = "--data"
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
			return e, fmt.Errorf("--ext %q: want name=value with a lower-case alphanumeric name", kv)
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

// HTTPError is a refusal from the ingress: its status and JSON body.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("broker answered %d: %s", e.Status, strings.TrimSpace(e.Body))
}

// Send POSTs e to a broker ingress URL, in binary mode unless structured.
func Send(ctx context.Context, url string, e event.Event, structured bool) error {
	var req *http.Request
	var err error
	if structured {
		b, merr := json.Marshal(e)
		if merr != nil {
			return fmt.Errorf("encoding event: %w", merr)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
		if err == nil {
			req.Header.Set("Content-Type", "application/cloudevents+json")
		}
	} else {
		req, err = cehttp.NewHTTPRequestFromEvent(ctx, url, e)
	}
	if err != nil {
		return fmt.Errorf("building request to %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("sending to %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return &HTTPError{Status: resp.StatusCode, Body: string(body)}
	}
	return nil
}
