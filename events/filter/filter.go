package filter

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	cesql "github.com/cloudevents/sdk-go/sql/v2"
	cesqlparser "github.com/cloudevents/sdk-go/sql/v2/parser"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Attributes is a Trigger's spec.filter: attribute name to the value it must
// have; "" matches any value, the attribute present or not.
type Attributes struct {
	Attributes map[string]string `json:"attributes,omitempty" yaml:"attributes,omitempty"`
}

// Filter is one element of a Trigger's spec.filters (Knative's
// SubscriptionsAPIFilter). Exactly one dialect may be set in each element.
type Filter struct {
	All    []Filter          `json:"all,omitempty" yaml:"all,omitempty"`
	Any    []Filter          `json:"any,omitempty" yaml:"any,omitempty"`
	Not    *Filter           `json:"not,omitempty" yaml:"not,omitempty"`
	Exact  map[string]string `json:"exact,omitempty" yaml:"exact,omitempty"`
	Prefix map[string]string `json:"prefix,omitempty" yaml:"prefix,omitempty"`
	Suffix map[string]string `json:"suffix,omitempty" yaml:"suffix,omitempty"`
	CESQL  string            `json:"cesql,omitempty" yaml:"cesql,omitempty"`
}

// Matcher decides whether an event passes a trigger's filter.
type Matcher interface {
	Match(e event.Event) bool
}

// Error is a filter that cannot be compiled; Field is its path, such as
// "filters[1].any[0].exact".
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// Errors lists every bad part of a filter.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

var attrNameRE = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// Compile validates and compiles a trigger's filter. As in Knative, when
// filters is non-empty it replaces attrs; with neither, every event matches.
func Compile(attrs *Attributes, filters []Filter) (Matcher, error) {
	var errs Errors
	if len(filters) > 0 {
		m := make(all, 0, len(filters))
		for i, f := range filters {
			m = append(m, compile(f, fmt.Sprintf("filters[%d]", i), &errs))
		}
		if len(errs) > 0 {
			return nil, errs
		}
		return m, nil
	}
	if attrs == nil || len(attrs.Attributes) == 0 {
		return all{}, nil
	}
	var m all
	for _, k := range slices.Sorted(maps.Keys(attrs.Attributes)) {
		if !attrNameRE.MatchString(k) {
			errs = append(errs, &Error{"filter.attributes." + k, "attribute name must start with a letter and contain only lowercase letters and digits"})
			continue
		}
		if v := attrs.Attributes[k]; v != "" {
			m = append(m, exact{k, v})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return m, nil
}

func compile(f Filter, path string, errs *Errors) Matcher {
	bad := func(field, reason string) Matcher {
		*errs = append(*errs, &Error{path + field, reason})
		return all{}
	}
	dialects := 0
	for _, set := range []bool{len(f.Exact) > 0, len(f.Prefix) > 0, len(f.Suffix) > 0, len(f.All) > 0, len(f.Any) > 0, f.Not != nil, f.CESQL != ""} {
		if set {
			dialects++
		}
	}
	switch {
	case dialects > 1:
		return bad("", "multiple dialects found, a filter can have only one dialect set")
	case len(f.Exact) > 0:
		return attrFilter(f.Exact, "exact", bad, func(k, v string) Matcher { return exact{k, v} })
	case len(f.Prefix) > 0:
		return attrFilter(f.Prefix, "prefix", bad, func(k, v string) Matcher { return prefix{k, v} })
	case len(f.Suffix) > 0:
		return attrFilter(f.Suffix, "suffix", bad, func(k, v string) Matcher { return suffix{k, v} })
	case len(f.All) > 0:
		m := make(all, len(f.All))
		for i, g := range f.All {
			m[i] = compile(g, fmt.Sprintf("%s.all[%d]", path, i), errs)
		}
		return m
	case len(f.Any) > 0:
		m := make(anyOf, len(f.Any))
		for i, g := range f.Any {
			m[i] = compile(g, fmt.Sprintf("%s.any[%d]", path, i), errs)
		}
		return m
	case f.Not != nil:
		return not{compile(*f.Not, path+".not", errs)}
	case f.CESQL != "":
		expr, err := parseCESQL(f.CESQL)
		if err != nil {
			return bad(".cesql", "invalid CESQL expression: "+err.Error())
		}
		return sql{expr}
	}
	return all{} // an empty filter matches every event
}

// parseCESQL parses expr. The sdk's parser panics on some syntax errors
// (its error listener dereferences a nil exception; found by FuzzFilters),
// so a panic is turned into a parse error.
func parseCESQL(expr string) (e cesql.Expression, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, fmt.Errorf("syntax error in %q", expr)
		}
	}()
	return cesqlparser.Parse(expr)
}

// attrFilter compiles a one-attribute dialect (exact, prefix, suffix).
func attrFilter(m map[string]string, dialect string, bad func(field, reason string) Matcher, mk func(k, v string) Matcher) Matcher {
	k, v, ok := single(m)
	if !ok {
		return bad("."+dialect, "must have exactly one attribute")
	}
	if !attrNameRE.MatchString(k) {
		return bad("."+dialect+"."+k, "attribute name must start with a letter and contain only lowercase letters and digits")
	}
	return mk(k, v)
}

func single(m map[string]string) (string, string, bool) {
	if len(m) != 1 {
		return "", "", false
	}
	for k, v := range m {
		return k, v, true
	}
	return "", "", false
}

// Attribute returns the string form of a context attribute or extension of
// e, and whether e has it.
func Attribute(e event.Event, name string) (string, bool) {
	switch name {
	case "specversion":
		return e.SpecVersion(), true
	case "id":
		return e.ID(), true
	case "source":
		return e.Source(), true
	case "type":
		return e.Type(), true
	case "subject":
		s := e.Subject()
		return s, s != ""
	case "datacontenttype":
		s := e.DataContentType()
		return s, s != ""
	case "dataschema":
		s := e.DataSchema()
		return s, s != ""
	case "time":
		t := e.Time()
		if t.IsZero() {
			return "", false
		}
		return t.Format(time.RFC3339Nano), true
	}
	v, ok := e.Extensions()[name]
	if !ok {
		return "", false
	}
	s, err := types.Format(v)
	if err != nil {
		return fmt.Sprint(v), true
	}
	return s, true
}

// MatchesAll reports whether m matches every event without looking at it
// (no filter, or only empty ones), so callers can skip decoding.
func MatchesAll(m Matcher) bool {
	a, ok := m.(all)
	if !ok {
		return false
	}
	for _, f := range a {
		if !MatchesAll(f) {
			return false
		}
	}
	return true
}

type exact struct{ k, v string }

func (m exact) Match(e event.Event) bool {
	got, ok := Attribute(e, m.k)
	return ok && got == m.v
}

type prefix struct{ k, v string }

func (m prefix) Match(e event.Event) bool {
	got, ok := Attribute(e, m.k)
	return ok && strings.HasPrefix(got, m.v)
}

type suffix struct{ k, v string }

func (m suffix) Match(e event.Event) bool {
	got, ok := Attribute(e, m.k)
	return ok && strings.HasSuffix(got, m.v)
}

type all []Matcher

func (m all) Match(e event.Event) bool {
	for _, f := range m {
		if !f.Match(e) {
			return false
		}
	}
	return true
}

type anyOf []Matcher

func (m anyOf) Match(e event.Event) bool {
	for _, f := range m {
		if f.Match(e) {
			return true
		}
	}
	return false
}

type not struct{ m Matcher }

func (m not) Match(e event.Event) bool { return !m.m.Match(e) }

type sql struct{ expr cesql.Expression }

// Match is true only when the expression evaluates to boolean true; an
// evaluation error is no match, as in Knative.
func (m sql) Match(e event.Event) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	v, err := m.expr.Evaluate(e)
	if err != nil {
		return false
	}
	b, ok := v.(bool)
	return ok && b
}
