package events

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// examples returns a valid payload of every type of the vocabulary.
func examples() []Payload {
	j := job()
	return []Payload{
		dataset(),
		DatasetRejectedData{Bucket: "datasets", Manifest: "cats/v1/dataset.yaml", Reasons: []FieldError{{Field: "train", Reason: "missing"}}},
		j,
		JobCancelledData{Job: j.ID, Reason: "not needed"},
		ImageBuiltData{Job: j.ID, Request: j, Framework: "timm", Adapter: AdapterRef{Name: "timm", Model: "resnet18"}, Reference: "r/timm@" + digestA, Layers: []Layer{{Digest: digestA, Size: 1}}},
		ImageFailedData{Job: j.ID, Framework: "timm", Reason: "NoSpec"},
		RunStartedData{Job: j, RunID: "run-1", Image: "r/timm@" + digestA, Executor: "process", Output: "s3://runs/run-1/", Adapter: AdapterRef{Name: "timm", Model: "resnet18"}},
		RunProgressData{Job: j.ID, RunID: "run-1", Epoch: 1, Step: 10, Metrics: map[string]float64{"loss": 1}, Time: time.Now()},
		RunFinishedData{Job: j.ID, RunID: "run-1", Status: StatusSucceeded, Artifacts: []Artifact{{Name: "w.pt", URI: "s3://runs/run-1/w.pt", SHA256: digestA[7:], Size: 1}}},
	}
}

// violate sets v to a value that breaks rule r, or reports false when the
// rule cannot be broken through this field's type.
func violate(v reflect.Value, r tagRule) bool {
	switch r.key {
	case "pattern":
		v.SetString("not valid!")
	case "enum":
		v.SetString("nope")
	case "minLength":
		v.SetString("")
	case "minItems":
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
	case "minimum", "exclusiveMinimum":
		switch {
		case v.CanInt():
			v.SetInt(int64(float(r.val)) - 1)
		case v.CanFloat():
			v.SetFloat(float(r.val) - 1)
		default:
			return false
		}
	default:
		return false
	}
	return true
}

// TestEveryTagRuleIsEnforced breaks each rule a schema tag states, one at a
// time, on a valid payload of every type, and expects Validate to name
// that field: a rule the JSON Schema states is a rule the code checks.
func TestEveryTagRuleIsEnforced(t *testing.T) {
	for _, ex := range examples() {
		e, err := New(context.Background(), "/t", ex)
		if err != nil {
			t.Fatalf("New(%T) = %v: the example must be valid", ex, err)
		}
		if err := Validate(e); err != nil {
			t.Fatalf("Validate(example %T) = %v", ex, err)
		}
		var walk func(v reflect.Value, path string)
		walk = func(v reflect.Value, path string) {
			typ := v.Type()
			for i := 0; i < typ.NumField(); i++ {
				sf, fv := typ.Field(i), v.Field(i)
				if sf.Anonymous {
					walk(fv, path)
					continue
				}
				name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
				p := path + "." + name
				for _, r := range parseTag(sf.Tag.Get("schema")) {
					if r.key == "format" {
						continue // date-time: a time.Time cannot hold anything else
					}
					t.Run(string(ex.EventType().Short())+p+"/"+r.key, func(t *testing.T) {
						bad := reflect.New(reflect.TypeOf(ex)).Elem()
						bad.Set(reflect.ValueOf(ex))
						target := fieldByPath(bad, strings.Split(strings.TrimPrefix(p, "data."), "."))
						if !violate(target, r) {
							t.Fatalf("rule %s=%s: no violating value for a %s (teach violate)", r.key, r.val, target.Type())
						}
						ev := e.Clone()
						if err := ev.SetData(ContentType, bad.Interface()); err != nil {
							t.Fatal(err)
						}
						got := fieldNames(t, Validate(ev))
						if !slices.Contains(got, p) {
							t.Errorf("Validate() with %s breaking %s=%s named %v, want %s", p, r.key, r.val, got, p)
						}
					})
				}
				if fv.Kind() == reflect.Struct && fv.Type() != timeType {
					walk(fv, p)
				}
			}
		}
		walk(reflect.ValueOf(ex), "data")
	}
}

// fieldByPath finds the settable field at a JSON path in v (a struct).
func fieldByPath(v reflect.Value, path []string) reflect.Value {
	for _, name := range path {
		v = jsonField(v, name)
	}
	return v
}

func jsonField(v reflect.Value, name string) reflect.Value {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous {
			if f := jsonField(v.Field(i), name); f.IsValid() {
				return f
			}
			continue
		}
		if n, _, _ := strings.Cut(sf.Tag.Get("json"), ","); n == name {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}

// TestNamedRulesResolve fails on a tag naming a pattern or list that does
// not exist (GenerateSchema would panic at run time otherwise).
func TestNamedRulesResolve(t *testing.T) {
	for _, typ := range Types() {
		if _, err := GenerateSchema(typ); err != nil {
			t.Errorf("GenerateSchema(%s) = %v", typ, err)
		}
	}
}
