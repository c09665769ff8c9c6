package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/vision-platform/vp/events"
)

var attrNameRE = regexp.MustCompile(`^[a-z0-9]+$`)

// batchMediaType is the CloudEvents HTTP batch mode's content type.
const batchMediaType = "application/cloudevents-batch+json"

// parseEvents decodes the CloudEvents of a request in any of the three
// HTTP modes: binary (ce-* headers), structured
// (application/cloudevents+json) and batch (application/cloudevents-
// batch+json), with sdk-go's decoders. (local/broker's ParseRequest does
// the same with finer field names, but would link the broker and its
// embedded NATS server into the gateway.) A decoding problem names "body",
// the attribute, or "[i]" in a batch.
func parseEvents(h http.Header, body []byte) ([]event.Event, []events.FieldError) {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt == batchMediaType {
		var raws []json.RawMessage
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, []events.FieldError{{Field: "body", Reason: "a batch must be a JSON array of events: " + err.Error()}}
		}
		if len(raws) == 0 {
			return nil, []events.FieldError{{Field: "body", Reason: "the batch is empty"}}
		}
		out := make([]event.Event, len(raws))
		var probs []events.FieldError
		for i, raw := range raws {
			prefix := fmt.Sprintf("[%d]", i)
			if p := memberProblems(raw); len(p) > 0 {
				for _, fe := range p {
					fe.Field = prefix + "." + fe.Field
					probs = append(probs, fe)
				}
				continue
			}
			if err := json.Unmarshal(raw, &out[i]); err != nil {
				probs = append(probs, events.FieldError{Field: prefix, Reason: err.Error()})
				continue
			}
			for _, fe := range attributeProblems(out[i]) {
				fe.Field = prefix + "." + fe.Field
				probs = append(probs, fe)
			}
		}
		return out, probs
	}
	msg := cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body)))
	switch msg.ReadEncoding() {
	case binding.EncodingBinary, binding.EncodingStructured:
	default:
		return nil, []events.FieldError{{Field: "specversion", Reason: "no ce-specversion header (binary mode), and Content-Type is not application/cloudevents+json nor " + batchMediaType}}
	}
	var probs []events.FieldError
	if msg.ReadEncoding() == binding.EncodingBinary {
		for _, a := range []struct {
			name     string
			absolute bool
		}{{"source", false}, {"dataschema", true}} {
			if v := h.Get("Ce-" + a.name); v != "" {
				if p := uriProblem(v, a.absolute); p != "" {
					probs = append(probs, events.FieldError{Field: a.name, Reason: p})
				}
			}
		}
	} else if p := memberProblems(body); len(p) > 0 {
		return nil, p
	}
	e, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		return nil, []events.FieldError{{Field: "body", Reason: err.Error()}}
	}
	return []event.Event{*e}, append(probs, attributeProblems(*e)...)
}

// memberProblems lists the members of a structured event whose name is not
// an attribute name (lower-case letters and digits) or whose value is null
// (data may be; an attribute is a value or absent).
func memberProblems(raw []byte) []events.FieldError {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil // the decoder names it
	}
	var out []events.FieldError
	for k, v := range m {
		switch {
		case k == "data_base64":
			out = append(out, events.FieldError{Field: k, Reason: "binary data goes in binary mode (ce-* headers); structured events carry JSON data"})
		case !attrNameRE.MatchString(k):
			out = append(out, events.FieldError{Field: k, Reason: "not an attribute name (lower-case letters a-z and digits)"})
		case k != "data" && string(bytes.TrimSpace(v)) == "null":
			out = append(out, events.FieldError{Field: k, Reason: "null; give a value or leave it out"})
		case k != "data" && string(bytes.TrimSpace(v)) == `""`:
			out = append(out, events.FieldError{Field: k, Reason: "empty; an attribute present is a non-empty string"})
		case !contextAttrs[k] && k != "data" && !extensionValue(v):
			out = append(out, events.FieldError{Field: k, Reason: "an extension's value is a string, a boolean or a 32-bit integer"})
		case k == "datacontenttype":
			var ct string
			if json.Unmarshal(v, &ct) == nil && !isJSONType(ct) {
				out = append(out, events.FieldError{Field: k, Reason: fmt.Sprintf("%q: structured events carry JSON data (other data goes in binary mode)", ct)})
			}
		case k == "source" || k == "dataschema":
			// As sent: the decoder escapes what a URI cannot hold.
			var u string
			if json.Unmarshal(v, &u) == nil {
				if p := uriProblem(u, k == "dataschema"); p != "" {
					out = append(out, events.FieldError{Field: k, Reason: p})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// attributeProblems lists the string attributes of e the broker could not
// store and deliver as they are (it carries them as HTTP headers): not
// UTF-8, a control character, blanks at either end. The broker refuses
// them too; the gateway says so before forwarding anything.
func attributeProblems(e event.Event) []events.FieldError {
	var out []events.FieldError
	events.ContextErrors(e, &out)
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	events.StringAttributes(e, func(name, v string) {
		if p := headerValueProblem(v); p != "" {
			out = append(out, events.FieldError{Field: name, Reason: p})
		}
	})
	return out
}

func headerValueProblem(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if (r < ' ' && r != '\t') || r == 0x7f {
			return fmt.Sprintf("contains the control character %U", r)
		}
	}
	if first, _ := utf8.DecodeRuneInString(s); blank(first) {
		return "starts with a blank"
	}
	if last, _ := utf8.DecodeLastRuneInString(s); blank(last) {
		return "ends with a blank"
	}
	return ""
}

// uriProblem says why s is not a URI reference (an absolute URI when
// absolute): RFC 3986's characters, and one that parses.
func uriProblem(s string, absolute bool) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || strings.IndexByte(`"<>\^`+"`{|}", c) >= 0 {
			return "is not a URI reference (RFC 3986: ASCII letters, digits and -._~:/?#[]@!$&'()*+,;=%)"
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "is not a URI reference: " + err.Error()
	}
	if absolute && u.Scheme == "" {
		return "is not an absolute URI"
	}
	return ""
}

// contextAttrs are the CloudEvents context attributes; other members of a
// structured event are extensions.
var contextAttrs = map[string]bool{"specversion": true, "id": true, "source": true, "type": true, "subject": true,
	"time": true, "datacontenttype": true, "dataschema": true}

// extensionValue reports whether raw is a value an extension may have in
// JSON: a string, a boolean, or an integer within CloudEvents' 32 bits.
func extensionValue(raw json.RawMessage) bool {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return false
	}
	switch t := v.(type) {
	case string, bool:
		return true
	case json.Number:
		f, ok := new(big.Float).SetString(string(t))
		if !ok || !f.IsInt() {
			return false
		}
		n, acc := f.Int64()
		return acc == big.Exact && n >= math.MinInt32 && n <= math.MaxInt32
	}
	return false
}

// blank is Go's white space and JSON Schema's (ECMA-262's \s, which adds
// U+FEFF): the OpenAPI document's pattern for attributes says the same.
func blank(r rune) bool { return unicode.IsSpace(r) || r == '\ufeff' }
