package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a bad file: the file, the line (0 when not known) and what is
// wrong.
type Error struct {
	File   string
	Line   int
	Reason string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return e.File + ": " + e.Reason
}

// Document is one decoded document: its node, for placing errors found
// later, and its index in the file.
type Document struct {
	Node  *yaml.Node
	Index int
}

// Line is the line of the key at path (e.g. "spec", "delivery", "retry"),
// or of the nearest ancestor found.
func (d Document) Line(path ...string) int {
	n := d.Node
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		if n.Kind == yaml.SequenceNode {
			var i int
			if _, err := fmt.Sscanf(p, "%d", &i); err == nil && i >= 0 && i < len(n.Content) {
				n = n.Content[i]
				line = n.Line
				continue
			}
		}
		if n.Kind != yaml.MappingNode {
			break
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				line = n.Content[i].Line
				n = n.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			break
		}
	}
	return line
}

// DecodeAll decodes every non-empty document of data into a fresh T and
// hands it to fn. Decoding stops at the first document that does not
// decode; fn's errors are collected and returned together.
func DecodeAll[T any](file string, data []byte, fn func(doc Document, v *T) error) error {
	// Two passes over the same stream: a strict decoder into T (its errors
	// carry the file's lines) and a node decoder for the lines of the values
	// that validation finds bad later.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	nodes := yaml.NewDecoder(bytes.NewReader(data))
	var errs []error
	for i := 0; ; i++ {
		var doc yaml.Node
		err := nodes.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return &Error{File: file, Line: errLine(err), Reason: errReason(err)}
		}
		v := new(T)
		if err := strict.Decode(v); err != nil {
			line := errLine(err)
			reason := errReason(err)
			if p := pathAtLine(&doc, line); p != "" && !strings.Contains(reason, "not found") {
				reason = p + ": " + reason
			}
			return &Error{File: file, Line: line, Reason: reason}
		}
		if len(doc.Content) == 0 || (doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null") {
			continue // empty document
		}
		if err := fn(Document{Node: &doc, Index: i}, v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Errors collects problems of one document, each placed at a path.
type Errors struct {
	File string
	Doc  Document
	List []error
}

// Add records a problem at a dotted path ("spec.delivery.retry"); the path
// leads the reason.
func (e *Errors) Add(path, format string, args ...any) {
	e.List = append(e.List, &Error{File: e.File, Line: e.Doc.Line(strings.Split(path, ".")...), Reason: path + ": " + fmt.Sprintf(format, args...)})
}

// Err is nil without problems, else all of them.
func (e *Errors) Err() error { return errors.Join(e.List...) }

var lineRE = regexp.MustCompile(`line (\d+): `)

func errLine(err error) int {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n := 0
		fmt.Sscanf(m[1], "%d", &n)
		return n
	}
	return 0
}

func errReason(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		parts := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			parts[i] = e
			if i == 0 {
				parts[i] = lineRE.ReplaceAllString(e, "")
			}
		}
		return strings.Join(parts, "; ")
	}
	return strings.TrimPrefix(lineRE.ReplaceAllString(err.Error(), ""), "yaml: ")
}

// pathAtLine names the key whose scalar value is on line, as a dotted path.
func pathAtLine(n *yaml.Node, line int) string {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Line == line && v.Kind == yaml.ScalarNode {
				return k.Value
			}
			if sub := pathAtLine(v, line); sub != "" {
				return k.Value + "." + sub
			}
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			if v.Line == line && v.Kind == yaml.ScalarNode {
				return fmt.Sprint(i)
			}
			if sub := pathAtLine(v, line); sub != "" {
				return fmt.Sprintf("%d.%s", i, sub)
			}
		}
	}
	return ""
}
