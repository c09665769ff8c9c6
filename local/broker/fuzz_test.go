package broker

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// FuzzParseRequest feeds arbitrary bodies and headers to the ingress
// decoder in all three modes. It must never panic, must return either
// events or a reason naming a field, and every event it returns must
// survive the JSON round trip the store makes.
func FuzzParseRequest(f *testing.F) {
	f.Add(0, "1.0", "id-1", "/src", "t", []byte(`{"a":1}`))
	f.Add(1, "", "", "", "", []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t","data":{"k":"v"}}`))
	f.Add(2, "", "", "", "", []byte(`[{"specversion":"1.0","id":"x","source":"/s","type":"t"},{"specversion":"1.0","id":"y","source":"/s","type":"t","data_base64":"AAEC"}]`))
	f.Add(1, "", "", "", "", []byte(`{"specversion":"0.3","id":"x","source":"/s","type":"t","time":"not-a-time"}`))
	f.Fuzz(func(t *testing.T, mode int, specversion, id, source, typ string, body []byte) {
		h := http.Header{}
		switch mode % 3 {
		case 0:
			h.Set("Content-Type", "application/json")
			h.Set("Ce-Specversion", specversion)
			h.Set("Ce-Id", id)
			h.Set("Ce-Source", source)
			h.Set("Ce-Type", typ)
		case 1:
			h.Set("Content-Type", "application/cloudevents+json")
		case 2:
			h.Set("Content-Type", batchMediaType)
		}
		evs, _, fields, err := ParseRequest(h, body)
		if err != nil {
			if len(fields) == 0 {
				t.Fatalf("ParseRequest error %v names no field", err)
			}
			return
		}
		if len(evs) == 0 {
			t.Fatal("ParseRequest returned no events and no error")
		}
		for _, e := range evs {
			if len(checkEvent(e)) > 0 {
				continue // the ingress refuses these with 400
			}
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("valid event does not marshal: %v", err)
			}
			var back = e.Clone()
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("stored form does not decode: %v\n%s", err, b)
			}
			if back.ID() != e.ID() || back.Type() != e.Type() || back.Source() != e.Source() {
				t.Fatalf("round trip changed the event: %v vs %v", e, back)
			}
		}
	})
}

// FuzzBinaryFastPath holds the binary-mode fast path to the answers of the
// general path (sdk-go's decoder plus checkEvent): where the fast path
// decides, it accepts exactly what the general path accepts and stores the
// same attributes.
func FuzzBinaryFastPath(f *testing.F) {
	f.Add("1.0", "id-1", "/src", "t", "", "application/json", "ext", "v", []byte(`{"a":1}`))
	f.Add("1.0", "", "/src", "t", "2024-01-01T00:00:00Z", "text/plain", "knativebrokerttl", "x", []byte(`hi`))
	f.Add("1.0", "x", "", "", "yesterday", "application/json", "Bad-Ext", "v", []byte(`{`))
	f.Fuzz(func(t *testing.T, sv, id, source, typ, tm, ct, ext, extv string, body []byte) {
		h := http.Header{}
		set := func(k, v string) {
			v = strings.Trim(v, " \t") // as net/textproto reads header values
			if v != "" {
				h.Set(k, v)
			}
		}
		set("Ce-Specversion", sv)
		set("Ce-Id", id)
		set("Ce-Source", source)
		set("Ce-Type", typ)
		set("Ce-Time", tm)
		set("Content-Type", ct)
		if ext != "" && validHeaderName(ext) {
			h.Set("Ce-"+ext, extv)
		}
		for k, v := range h { // what net/http would refuse never reaches us
			if !validHeaderValue(v[0]) {
				delete(h, k)
			}
		}
		fast, fastFields, decided := binaryHeaders(h, body)
		if !decided {
			return
		}
		evs, _, fields, err := ParseRequest(h, body)
		if err == nil {
			fields = checkEvent(evs[0])
		}
		if (len(fastFields) == 0) != (len(fields) == 0) {
			t.Fatalf("fast path fields %v, general path fields %v (err %v) for %v", fastFields, fields, err, h)
		}
		if len(fields) > 0 {
			return
		}
		want := nats.Header{}
		if _, err := encodeEvent(&evs[0], want); err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			if fast.Get(k) != v[0] && k != hdrTime {
				t.Fatalf("header %s: fast %q, general %q", k, fast.Get(k), v[0])
			}
		}
	})
}

func validHeaderName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

func validHeaderValue(s string) bool {
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
