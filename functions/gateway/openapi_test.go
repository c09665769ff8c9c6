package gateway

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/registry"
)

type openAPIDoc struct {
	OpenAPI    string                               `json:"openapi"`
	Paths      map[string]map[string]map[string]any `json:"paths"`
	Components struct {
		Schemas map[string]map[string]any `json:"schemas"`
	} `json:"components"`
}

func loadDoc(t *testing.T) openAPIDoc {
	t.Helper()
	b, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var d openAPIDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestOpenAPIRoutes: the document has every API route of the gateway,
// and nothing it does not serve; every operation answers errors in the
// Error shape.
func TestOpenAPIRoutes(t *testing.T) {
	d := loadDoc(t)
	if d.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", d.OpenAPI)
	}
	var documented []string
	for p, ops := range d.Paths {
		for m, op := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
			resps, _ := op["responses"].(map[string]any)
			for code, r := range resps {
				if code[0] != '4' && code[0] != '5' {
					continue
				}
				ref, _ := r.(map[string]any)["$ref"].(string)
				if !strings.HasPrefix(ref, "#/components/responses/") {
					t.Errorf("%s %s answers %s without an error response of the Error shape", m, p, code)
				}
			}
		}
	}
	var served []string
	for _, r := range New().routes {
		if (r.page || r.name == "console_static") && r.pattern != "/{$}" {
			continue
		}
		p := strings.TrimSuffix(r.pattern, "{$}")
		served = append(served, r.method+" "+p)
	}
	sort.Strings(documented)
	sort.Strings(served)
	if diff := cmp.Diff(served, documented); diff != "" {
		t.Errorf("routes served (-) and documented (+) differ:\n%s", diff)
	}
}

// jsonFields lists the JSON members a Go type encodes to (embedded structs
// flattened).
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPISchemasMatchTypes: each schema of an answer or a request has
// the members of the Go type the gateway encodes or decodes, no more and
// no fewer.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	d := loadDoc(t)
	types := map[string]any{
		"Error": api.ErrorBody{}, "FieldError": events.FieldError{}, "Model": registry.Model{}, "ModelList": api.ModelList{},
		"ModelRef": events.ModelRef{}, "DatasetRef": events.DatasetRef{}, "Hyperparameters": events.Hyperparameters{},
		"Resources": events.Resources{}, "JobRequestedData": events.JobRequestedData{}, "DatasetSelector": api.DatasetSelector{},
		"JobRequest": api.JobRequest{}, "JobAccepted": api.JobAccepted{}, "JobSummary": api.JobSummary{}, "JobList": api.JobList{},
		"Entry": ledger.Entry{}, "Artifact": events.Artifact{}, "JobStatus": ledger.JobStatus{}, "ProgressPoint": api.ProgressPoint{},
		"Progress": api.Progress{}, "CancelRequest": api.CancelRequest{}, "CancelAccepted": api.CancelAccepted{},
		"PresignedArtifact": api.Artifact{}, "Artifacts": api.Artifacts{}, "UploadFile": api.UploadFile{}, "Train": api.Train{},
		"UploadRequest": api.UploadRequest{}, "Part": api.Part{}, "UploadTarget": api.UploadTarget{}, "Upload": api.Upload{},
		"CompleteRequest": api.CompleteRequest{}, "Completed": api.Completed{}, "DatasetList": api.DatasetList{},
		"EventsAccepted": api.EventsAccepted{}, "ImageLayer": api.ImageLayer{}, "Image": api.Image{}, "Images": api.Images{},
	}
	// Members a type adds in its own MarshalJSON.
	extra := map[string][]string{"DatasetStatus": {"lastEvent"}}
	types["DatasetStatus"] = ledger.DatasetStatus{}
	for name, v := range types {
		s, ok := d.Components.Schemas[name]
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		props, _ := s["properties"].(map[string]any)
		var got []string
		for k := range props {
			got = append(got, k)
		}
		sort.Strings(got)
		want := append(jsonFields(reflect.TypeOf(v)), extra[name]...)
		sort.Strings(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("schema %s and %T differ (-Go +schema):\n%s", name, v, diff)
		}
		reqs, _ := s["required"].([]any)
		for _, req := range reqs {
			if !slices.Contains(want, req.(string)) {
				t.Errorf("schema %s requires %s, which %T lacks", name, req, v)
			}
		}
		if s["additionalProperties"] != false {
			t.Errorf("schema %s allows members it does not list", name)
		}
	}
	// Nested objects described inline.
	nested := map[string]any{
		"ModelList.facets": api.Facets{}, "Model.input": registry.Input{}, "Model.recommended": registry.Recommended{},
		"Model.adapterModel": registry.AdapterModel{}, "Model.source": registry.Source{}, "JobStatus.progress": ledger.Progress{},
		"Upload.manifest": api.Manifest{},
	}
	for path, v := range nested {
		schema, member, _ := strings.Cut(path, ".")
		s := d.Components.Schemas[schema]["properties"].(map[string]any)[member].(map[string]any)
		var got []string
		for k := range s["properties"].(map[string]any) {
			got = append(got, k)
		}
		sort.Strings(got)
		if diff := cmp.Diff(jsonFields(reflect.TypeOf(v)), got); diff != "" {
			t.Errorf("schema %s and %T differ (-Go +schema):\n%s", path, v, diff)
		}
	}
}
