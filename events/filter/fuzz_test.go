package filter

import (
	"errors"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// FuzzFilters checks the laws every filter must keep for any attribute and
// value: exact matches only equal values, prefix and suffix agree with the
// strings package, not inverts, all/any of one filter equal that filter, and
// CESQL never panics.
func FuzzFilters(f *testing.F) {
	f.Add("type", "dev.visionplatform.run.finished", "dev.", "type = 'x'")
	f.Add("subject", "", "", "")
	f.Add("jobid", "job-1", "job-10", "jobid LIKE 'job-%' AND NOT EXISTS nope")
	f.Fuzz(func(t *testing.T, attr, value, probe, expr string) {
		e := event.New()
		e.SetID("1")
		e.SetSource("/fuzz")
		e.SetType("t")
		if attrNameRE.MatchString(attr) && !isContextAttr(attr) {
			e.SetExtension(attr, value)
		}
		got, present := Attribute(e, attr)
		for _, c := range []struct {
			f    Filter
			want bool
		}{
			{Filter{Exact: map[string]string{attr: probe}}, present && got == probe},
			{Filter{Prefix: map[string]string{attr: probe}}, present && strings.HasPrefix(got, probe)},
			{Filter{Suffix: map[string]string{attr: probe}}, present && strings.HasSuffix(got, probe)},
		} {
			m, err := Compile(nil, []Filter{c.f})
			if !attrNameRE.MatchString(attr) {
				if err == nil {
					t.Fatalf("Compile accepted attribute name %q", attr)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Compile(%+v) = %v", c.f, err)
			}
			if m.Match(e) != c.want {
				t.Fatalf("%+v on %q=%q: Match = %v, want %v", c.f, attr, got, !c.want, c.want)
			}
			n, errN := Compile(nil, []Filter{{Not: &c.f}})
			a, errA := Compile(nil, []Filter{{All: []Filter{c.f}}})
			o, errO := Compile(nil, []Filter{{Any: []Filter{c.f}}})
			if err := errors.Join(errN, errA, errO); err != nil {
				t.Fatalf("Compile(not/all/any of %+v) = %v", c.f, err)
			}
			if n.Match(e) == c.want || a.Match(e) != c.want || o.Match(e) != c.want {
				t.Fatalf("not/all/any disagree with %+v", c.f)
			}
		}
		if m, err := Compile(nil, []Filter{{CESQL: expr}}); err == nil {
			m.Match(e)
		}
	})
}

func isContextAttr(s string) bool {
	switch s {
	case "specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema", "time":
		return true
	}
	return false
}
