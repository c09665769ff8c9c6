package broker

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"

	"github.com/vision-platform/vp/events"
)

// The binary-mode fast path: a request whose ce-* headers already are the
// stored form is checked and copied without building an event. It applies
// the same rules as the general path (the fuzz test FuzzBinaryFastPath
// holds the two to the same answers).

var extNameRE = regexp.MustCompile(`^[a-z0-9]+$`)

// binaryHeaders checks a binary-mode request's headers and returns the
// headers to store, or the fields that are wrong. ok is false when the
// request is not in binary mode at all.
func binaryHeaders(h http.Header, body []byte) (out nats.Header, fields []events.FieldError, ok bool) {
	sv := h[hdrSpecVersion]
	if len(sv) == 0 {
		return nil, nil, false
	}
	if sv[0] != "1.0" {
		return nil, nil, false // 0.3 and unknown versions take the general path
	}
	out = make(nats.Header, len(h)+3)
	bad := func(f, r string) { fields = append(fields, events.FieldError{Field: f, Reason: r}) }
	for k, v := range h {
		if !strings.HasPrefix(k, "Ce-") {
			continue
		}
		if len(v) != 1 || strings.TrimSpace(v[0]) != v[0] {
			return nil, nil, false // let the general path decide
		}
		name := strings.ToLower(k[3:])
		val := v[0]
		if p := headerValueProblem(val); p != "" {
			bad(name, p)
			continue
		}
		switch name {
		case "specversion":
		case "id", "type":
			if strings.TrimSpace(val) == "" {
				bad(name, "MUST be a non-empty string")
			}
		case "source":
			if strings.TrimSpace(val) == "" {
				bad(name, "REQUIRED")
			} else if u, err := url.Parse(val); err != nil || u.String() != val {
				return nil, nil, false // the general path normalises it
			}
		case "subject":
			if strings.TrimSpace(val) == "" {
				bad(name, "if present, MUST be a non-empty string")
			}
		case "time":
			if _, err := types.ParseTime(val); err != nil {
				return nil, nil, false
			}
		case "dataschema":
			return nil, nil, false // URI rules: the general path checks them
		case "datacontenttype":
			return nil, nil, false
		default:
			if !extNameRE.MatchString(name) {
				return nil, nil, false
			}
		}
		out[k] = v
	}
	for _, req := range []string{hdrID, hdrSource, hdrType} {
		if _, present := out[req]; !present {
			bad(strings.ToLower(req[3:]), "REQUIRED")
		}
	}
	if ct := h.Get(hdrContentType); ct != "" {
		if p := headerValueProblem(ct); p != "" {
			bad("datacontenttype", p)
			return out, fields, true
		}
		if _, _, err := mime.ParseMediaType(ct); err != nil || strings.TrimSpace(ct) != ct {
			return nil, nil, false
		}
		out[hdrContentType] = []string{ct}
		if isJSON(ct) && len(body) > 0 && !json.Valid(body) {
			bad("data", "datacontenttype "+ct+" says JSON, but data is not valid JSON")
		}
	}
	if v, present := out[hdrTTL]; present {
		if _, err := ttlOf(v[0]); err != nil {
			bad(ExtTTL, err.Error())
		}
	}
	return out, fields, true
}
