package events

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrUnknownType is returned for a type outside the vocabulary.
var ErrUnknownType = errors.New("unknown event type")

// FieldError names one bad field of an event and why it is bad. Field is a
// path such as "data.dataset.digest" or "jobid".
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidationError lists every bad field of an event. Callers get it with
// errors.As to report the fields (the broker's 400 body does).
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// fields collects field errors under a path prefix.
type fields struct {
	prefix string
	errs   *[]FieldError
}

func newFields(prefix string) fields {
	return fields{prefix: prefix, errs: new([]FieldError)}
}

func (f fields) at(name string) fields {
	p := name
	if f.prefix != "" {
		p = f.prefix + "." + name
	}
	return fields{prefix: p, errs: f.errs}
}

func (f fields) index(i int) fields {
	return fields{prefix: fmt.Sprintf("%s[%d]", f.prefix, i), errs: f.errs}
}

func (f fields) add(name, format string, args ...any) {
	p := name
	if f.prefix != "" && name != "" {
		p = f.prefix + "." + name
	} else if name == "" {
		p = f.prefix
	}
	*f.errs = append(*f.errs, FieldError{Field: p, Reason: fmt.Sprintf(format, args...)})
}

func (f fields) err() error {
	if len(*f.errs) == 0 {
		return nil
	}
	out := append([]FieldError(nil), *f.errs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return &ValidationError{Fields: out}
}
