package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
)

// The ingress decodes an event with its errors tied to the attribute they
// are about, so that a 400 names the right field: an attrError carries the
// field, never guessed from an error's text.

// attrError is a decoding error about one attribute ("time", "ext"), or
// about the request as a whole ("body").
type attrError struct {
	Field string
	Err   error
}

func (e *attrError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *attrError) Unwrap() error { return e.Err }

// fieldOf is the field a decoding error is about: "body" unless it says.
func fieldOf(err error) string {
	if ae, ok := errors.AsType[*attrError](err); ok {
		return ae.Field
	}
	return "body"
}

// headerValueProblem says why s cannot be an attribute the broker stores
// and delivers as an HTTP header value ("" when it can): CloudEvents
// strings are Unicode, and a header cannot carry control characters nor
// keep leading or trailing blanks.
func headerValueProblem(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if (r < ' ' && r != '\t') || r == 0x7f {
			return fmt.Sprintf("contains the control character %U, which an HTTP header cannot carry", r)
		}
	}
	if len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		return "has leading or trailing blanks, which an HTTP header does not keep"
	}
	return ""
}

// decodeBinary decodes a binary-mode request: every ce-* header and
// Content-Type must be a string the broker can store and deliver as it
// came, and each attribute's decoding error names it.
func decodeBinary(h http.Header, body []byte) (*event.Event, error) {
	for k, vs := range h {
		name, ok := strings.CutPrefix(k, "Ce-")
		switch {
		case k == hdrContentType:
			name = "datacontenttype"
		case !ok:
			continue
		}
		for _, v := range vs {
			if p := headerValueProblem(v); p != "" {
				return nil, &attrError{Field: strings.ToLower(name), Err: errors.New(p)}
			}
		}
	}
	msg := cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body)))
	e := event.New()
	if err := msg.ReadBinary(context.Background(), (*binaryWriter)(&e)); err != nil {
		return nil, err
	}
	return &e, nil
}

// binaryWriter builds an event from a binary-mode message as sdk-go's
// binding.ToEvent does, but wraps each attribute's error in an attrError.
type binaryWriter event.Event

var _ binding.BinaryWriter = (*binaryWriter)(nil)

func (w *binaryWriter) Start(context.Context) error { return nil }
func (w *binaryWriter) End(context.Context) error   { return nil }

func (w *binaryWriter) SetAttribute(a spec.Attribute, v any) error {
	e := (*event.Event)(w)
	if v == nil {
		return a.Delete(e.Context)
	}
	if a.Kind() == spec.SpecVersion {
		switch s, _ := types.ToString(v); s {
		case event.CloudEventsVersionV1:
			e.Context = e.Context.AsV1()
		case event.CloudEventsVersionV03:
			e.Context = e.Context.AsV03()
		default:
			return &attrError{Field: a.Name(), Err: fmt.Errorf("unsupported version %q", s)}
		}
		return nil
	}
	if err := a.Set(e.Context, v); err != nil {
		return &attrError{Field: a.Name(), Err: err}
	}
	return nil
}

func (w *binaryWriter) SetExtension(name string, v any) error {
	e := (*event.Event)(w)
	v, err := types.Validate(v)
	if err == nil {
		err = e.Context.SetExtension(name, v)
	}
	if err != nil {
		return &attrError{Field: name, Err: err}
	}
	return nil
}

func (w *binaryWriter) SetData(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return &attrError{Field: "data", Err: err}
	}
	if len(b) > 0 {
		w.DataEncoded = b
	}
	return nil
}

// decodeStructured decodes one event in structured (JSON) form. A body
// that is not UTF-8 is refused, as JSON text must be; when sdk-go cannot
// decode it, the member that keeps it from decoding is found by checking
// each on its own.
func decodeStructured(body []byte) (*event.Event, error) {
	if !utf8.Valid(body) {
		return nil, &attrError{Field: badMember(body, func(_ string, raw []byte) error {
			if !utf8.Valid(raw) {
				return errors.New("invalid")
			}
			return nil
		}), Err: errors.New("is not valid UTF-8 (JSON text must be)")}
	}
	var e event.Event
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, &attrError{Field: badMember(body, checkMember), Err: err}
	}
	return &e, nil
}

// badMember walks the members of a JSON object and names the first whose
// value does not parse, or that check refuses; "body" when the body is not
// an object or no member is at fault.
func badMember(body []byte, check func(key string, raw []byte) error) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "body"
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "body"
		}
		key, _ := tok.(string) // a key is always a string inside an object
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil || check(key, raw) != nil {
			return key
		}
		if seen[key] && (key == "specversion" || key == "datacontenttype") {
			return key // given twice; sdk-go refuses these two
		}
		seen[key] = true
	}
	return "body"
}

// checkMember checks one member of a structured event on its own: the
// attributes' JSON types and formats, and extension names and values.
func checkMember(key string, raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	str := func() (string, error) {
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%s is not a string", raw)
		}
		return s, nil
	}
	switch key {
	case "data":
		return nil
	case "specversion":
		s, err := str()
		if err == nil && s != event.CloudEventsVersionV1 && s != event.CloudEventsVersionV03 {
			err = fmt.Errorf("unsupported version %q", s)
		}
		return err
	case "id", "type", "subject", "datacontenttype", "datacontentencoding":
		_, err := str()
		return err
	case "source", "dataschema", "schemaurl":
		s, err := str()
		if err == nil {
			_, err = url.Parse(s)
		}
		return err
	case "time":
		s, err := str()
		if err == nil {
			_, err = types.ParseTime(s)
		}
		return err
	case "data_base64":
		s, err := str()
		if err == nil {
			_, err = base64.StdEncoding.DecodeString(s)
		}
		return err
	}
	if v == nil {
		return nil
	}
	var ctx event.EventContextV1
	v, err := types.Validate(v)
	if err == nil {
		err = ctx.SetExtension(key, v)
	}
	return err
}
