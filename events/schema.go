package events

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

//go:embed schemas/*.json
var schemaFS embed.FS

// Schema returns the JSON Schema (draft 2020-12) of t's payload, as stored
// in events/schemas/.
func Schema(t Type) ([]byte, error) {
	if !t.Known() {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, t)
	}
	return schemaFS.ReadFile("schemas/" + t.Short() + ".json")
}

// GenerateSchema derives the JSON Schema of t's payload from its Go struct:
// json tags give the properties, fields without omitempty are required,
// desc tags give descriptions and schema tags give constraints
// ("enum=a|b;pattern=...;minimum=1"). The files in events/schemas/ are its
// output; a test keeps them in step.
func GenerateSchema(t Type) ([]byte, error) {
	p, ok := NewPayload(t)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, t)
	}
	s := structSchema(reflect.TypeOf(p).Elem())
	root := ordered{
		{"$schema", "https://json-schema.org/draft/2020-12/schema"},
		{"$id", t.SchemaURI()},
		{"title", string(t)},
	}
	root = append(root, s...)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ordered is a JSON object that keeps its key order.
type ordered []kv

type kv struct {
	k string
	v any
}

func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		b.Write(k)
		b.WriteByte(':')
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(e.v); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

var timeType = reflect.TypeOf(time.Time{})

func typeSchema(t reflect.Type) ordered {
	switch {
	case t == timeType:
		return ordered{{"type", "string"}, {"format", "date-time"}}
	case t.Kind() == reflect.Struct:
		return structSchema(t)
	case t.Kind() == reflect.Slice:
		return ordered{{"type", "array"}, {"items", typeSchema(t.Elem())}}
	case t.Kind() == reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return ordered{{"type", "object"}}
		}
		return ordered{{"type", "object"}, {"additionalProperties", typeSchema(t.Elem())}}
	case t.Kind() == reflect.String:
		return ordered{{"type", "string"}}
	case t.Kind() == reflect.Bool:
		return ordered{{"type", "boolean"}}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return ordered{{"type", "integer"}}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return ordered{{"type", "number"}}
	}
	return ordered{}
}

func structSchema(t reflect.Type) ordered {
	var props ordered
	var required []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if sf.Anonymous {
				walk(sf.Type)
				continue
			}
			name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "" || name == "-" || !sf.IsExported() {
				continue
			}
			ps := typeSchema(sf.Type)
			if d := sf.Tag.Get("desc"); d != "" {
				ps = append(ordered{{"description", d}}, ps...)
			}
			ps = append(ps, constraints(sf.Tag.Get("schema"))...)
			props = append(props, kv{name, ps})
			if !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	out := ordered{{"type", "object"}, {"properties", props}}
	if len(required) > 0 {
		out = append(out, kv{"required", required})
	}
	return append(out, kv{"additionalProperties", false})
}

func constraints(tag string) ordered {
	var out ordered
	for _, r := range parseTag(tag) {
		switch r.key {
		case "enum":
			out = append(out, kv{r.key, enum(r.val)})
		case "pattern":
			out = append(out, kv{r.key, pattern(r.val).re.String()})
		case "minimum", "exclusiveMinimum", "minLength", "minItems":
			out = append(out, kv{r.key, float(r.val)})
		default:
			out = append(out, kv{r.key, r.val})
		}
	}
	return out
}
