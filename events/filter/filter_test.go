package filter

import (
	"errors"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func ev() event.Event {
	e := event.New()
	e.SetID("abc-123")
	e.SetSource("/minio/datasets")
	e.SetType("dev.visionplatform.dataset.uploaded")
	e.SetSubject("datasets/cats")
	e.SetExtension("jobid", "job-0001")
	e.SetExtension("priority", 5)
	return e
}

func TestMatch(t *testing.T) {
	cases := []struct {
		desc    string
		attrs   map[string]string
		filters []Filter
		want    bool
	}{
		{desc: "no filter matches all", want: true},
		{desc: "attributes exact", attrs: map[string]string{"type": "dev.visionplatform.dataset.uploaded"}, want: true},
		{desc: "attributes mismatch", attrs: map[string]string{"type": "dev.visionplatform.job.requested"}, want: false},
		{desc: "attributes empty value matches any", attrs: map[string]string{"type": "", "source": "/minio/datasets"}, want: true},
		{desc: "attributes empty value matches absent", attrs: map[string]string{"missing": ""}, want: true},
		{desc: "attributes absent attribute", attrs: map[string]string{"missing": "x"}, want: false},
		{desc: "attributes extension", attrs: map[string]string{"jobid": "job-0001"}, want: true},
		{desc: "attributes integer extension as string", attrs: map[string]string{"priority": "5"}, want: true},
		{desc: "exact", filters: []Filter{{Exact: map[string]string{"type": "dev.visionplatform.dataset.uploaded"}}}, want: true},
		{desc: "exact absent", filters: []Filter{{Exact: map[string]string{"nope": ""}}}, want: false},
		{desc: "prefix", filters: []Filter{{Prefix: map[string]string{"type": "dev.visionplatform."}}}, want: true},
		{desc: "prefix mismatch", filters: []Filter{{Prefix: map[string]string{"type": "com.example."}}}, want: false},
		{desc: "suffix", filters: []Filter{{Suffix: map[string]string{"type": ".uploaded"}}}, want: true},
		{desc: "suffix mismatch", filters: []Filter{{Suffix: map[string]string{"subject": "/dogs"}}}, want: false},
		{desc: "filters are ANDed", filters: []Filter{{Prefix: map[string]string{"type": "dev."}}, {Exact: map[string]string{"source": "/other"}}}, want: false},
		{desc: "all", filters: []Filter{{All: []Filter{{Prefix: map[string]string{"type": "dev."}}, {Suffix: map[string]string{"type": "uploaded"}}}}}, want: true},
		{desc: "all one fails", filters: []Filter{{All: []Filter{{Prefix: map[string]string{"type": "dev."}}, {Suffix: map[string]string{"type": "failed"}}}}}, want: false},
		{desc: "any", filters: []Filter{{Any: []Filter{{Exact: map[string]string{"type": "x"}}, {Exact: map[string]string{"id": "abc-123"}}}}}, want: true},
		{desc: "any none", filters: []Filter{{Any: []Filter{{Exact: map[string]string{"type": "x"}}, {Exact: map[string]string{"id": "y"}}}}}, want: false},
		{desc: "not", filters: []Filter{{Not: &Filter{Exact: map[string]string{"type": "x"}}}}, want: true},
		{desc: "not matching", filters: []Filter{{Not: &Filter{Prefix: map[string]string{"type": "dev."}}}}, want: false},
		{desc: "cesql true", filters: []Filter{{CESQL: "type LIKE '%uploaded' AND priority > 3"}}, want: true},
		{desc: "cesql false", filters: []Filter{{CESQL: "priority > 7"}}, want: false},
		{desc: "cesql missing attribute is no match", filters: []Filter{{CESQL: "nope = 'x'"}}, want: false},
		{desc: "cesql non-boolean is no match", filters: []Filter{{CESQL: "priority"}}, want: false},
		{desc: "filters override attributes", attrs: map[string]string{"type": "x"}, filters: []Filter{{Prefix: map[string]string{"type": "dev."}}}, want: true},
		{desc: "empty filter element matches", filters: []Filter{{}}, want: true},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			var a *Attributes
			if c.attrs != nil {
				a = &Attributes{Attributes: c.attrs}
			}
			m, err := Compile(a, c.filters)
			if err != nil {
				t.Fatalf("Compile() = %v", err)
			}
			if got := m.Match(ev()); got != c.want {
				t.Errorf("Match() = %v, want %v", got, c.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		desc    string
		attrs   map[string]string
		filters []Filter
		want    []string // fields named
	}{
		{desc: "two dialects", filters: []Filter{{Exact: map[string]string{"type": "a"}, Prefix: map[string]string{"type": "b"}}}, want: []string{"filters[0]"}},
		{desc: "exact two keys", filters: []Filter{{Exact: map[string]string{"type": "a", "source": "b"}}}, want: []string{"filters[0].exact"}},
		{desc: "bad attribute name", filters: []Filter{{Suffix: map[string]string{"Type": "a"}}}, want: []string{"filters[0].suffix.Type"}},
		{desc: "nested", filters: []Filter{{}, {Any: []Filter{{}, {Not: &Filter{CESQL: "type = = 1"}}}}}, want: []string{"filters[1].any[1].not.cesql"}},
		{desc: "every error", filters: []Filter{{Prefix: map[string]string{"A": "x"}}, {All: []Filter{{Exact: map[string]string{}}, {Suffix: map[string]string{"a": "1", "b": "2"}}}}}, want: []string{"filters[0].prefix.A", "filters[1].all[1].suffix"}},
		{desc: "bad attributes name", attrs: map[string]string{"my-ext": "1"}, want: []string{"filter.attributes.my-ext"}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			var a *Attributes
			if c.attrs != nil {
				a = &Attributes{Attributes: c.attrs}
			}
			_, err := Compile(a, c.filters)
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Compile() = %v, want Errors", err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Field)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("Compile() fields = %v, want %v (%v)", got, c.want, err)
			}
		})
	}
}
