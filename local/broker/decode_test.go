package broker

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseRequestFields: a refused event names the attribute at fault,
// found from the attribute that failed, not from an error's text.
func TestParseRequestFields(t *testing.T) {
	binary := func(k, v string) (http.Header, []byte) {
		h := http.Header{}
		for hk, hv := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "x", "Ce-Source": "/s", "Ce-Type": "t", "Content-Type": "application/json"} {
			h.Set(hk, hv)
		}
		h[k] = []string{v}
		return h, []byte("{}")
	}
	structured := func(body string) (http.Header, []byte) {
		return http.Header{"Content-Type": {"application/cloudevents+json"}}, []byte(body)
	}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	const ok = `"specversion":"1.0","id":"x","source":"/s","type":"t"`
	type request struct {
		hdr  http.Header
		body []byte
	}
	bin := func(k, v string) request { h, b := binary(k, v); return request{h, b} }
	str := func(body string) request { h, b := structured(body); return request{h, b} }
	for _, c := range []struct {
		desc string
		request
		want []string
	}{
		{"binary time", bin("Ce-Time", "yesterday"), []string{"time"}},
		{"binary dataschema", bin("Ce-Dataschema", "::no-scheme"), []string{"dataschema"}},
		{"binary subject not UTF-8", bin("Ce-Subject", "a\xffb"), []string{"subject"}},
		{"binary control character in id", bin("Ce-Id", "a\x01b"), []string{"id"}},
		{"binary extension not UTF-8", bin("Ce-Team", "\xc3"), []string{"team"}},
		{"binary content type not UTF-8", bin("Content-Type", "text/plain; charset=\xff"), []string{"datacontenttype"}},
		{"structured time", str(`{` + ok + `,"time":"yesterday"}`), []string{"time"}},
		{"structured too deep", str(`{` + ok + `,"data":` + deep + `}`), []string{"data"}},
		{"structured id a number", str(`{"specversion":"1.0","id":5,"source":"/s","type":"t"}`), []string{"id"}},
		{"structured data_base64", str(`{` + ok + `,"data_base64":"!!"}`), []string{"data_base64"}},
		{"structured extension name", str(`{` + ok + `,"Bad-Ext":"v"}`), []string{"Bad-Ext"}},
		{"structured extension value", str(`{` + ok + `,"team":{"a":1}}`), []string{"team"}},
		{"structured type not UTF-8", str("{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"/s\",\"type\":\"t\xff\"}"), []string{"type"}},
		{"structured CR LF in id", str(`{"specversion":"1.0","id":"a\r\nb","source":"/s","type":"t"}`), []string{"id"}},
		{"structured blank around subject", str(`{` + ok + `,"subject":" x"}`), []string{"subject"}},
		{"structured not JSON", str(`{`), []string{"body"}},
		{"structured specversion twice", str(`{` + ok + `,"specversion":"1.0"}`), []string{"specversion"}},
		{"batch", request{http.Header{"Content-Type": {batchMediaType}},
			[]byte(`[{"specversion":"1.0","id":5,"source":"/s","type":"t"},{` + ok + `},{` + ok + `,"time":"yesterday"}]`)}, []string{"[0].id", "[2].time"}},
	} {
		t.Run(c.desc, func(t *testing.T) {
			evs, _, fields, err := ParseRequest(c.hdr, c.body)
			if err == nil {
				for _, e := range evs {
					fields = append(fields, checkEvent(e)...)
				}
			}
			var got []string
			for _, f := range fields {
				got = append(got, f.Field)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("fields of ParseRequest(%s) (-want +got):\n%s\n%+v", c.desc, diff, fields)
			}
		})
	}
}

func TestHeaderValueProblem(t *testing.T) {
	for in, bad := range map[string]bool{
		"plain": false, "Zürich": false, "a\tb": false, "": false,
		"a\xffb": true, "a\rb": true, "a\nb": true, "a\x00b": true, "a\x7fb": true, " a": true, "a\t": true,
	} {
		if got := headerValueProblem(in) != ""; got != bad {
			t.Errorf("headerValueProblem(%q) = %q, want a problem: %v", in, headerValueProblem(in), bad)
		}
	}
}
