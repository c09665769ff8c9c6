package infra

import (
	"bytes"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"
)

// manifest is one rendered file: a comment and its objects, as
// multi-document YAML.
func manifest(comment string, objs ...any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header(comment))
	for _, obj := range objs {
		y, err := objectYAML(obj)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

// objectYAML is obj as YAML without the noise of empty API fields: null
// values (creationTimestamp: null), an empty spec or status.
func objectYAML(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", obj, err)
	}
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding %T: %w", obj, err)
	}
	prune(m)
	for _, k := range []string{"spec", "status"} {
		if v, ok := m[k].(map[string]any); ok && len(v) == 0 {
			delete(m, k)
		}
	}
	y, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %T as YAML: %w", obj, err)
	}
	return y, nil
}

func prune(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if x == nil {
				delete(t, k)
				continue
			}
			prune(x)
		}
	case []any:
		for _, x := range t {
			prune(x)
		}
	}
}
