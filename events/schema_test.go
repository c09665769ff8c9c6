package events

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite events/schemas from the payload structs")

// TestSchemasUpToDate keeps events/schemas/*.json in step with the payload
// structs: a field added to a struct and not to its schema fails here.
func TestSchemasUpToDate(t *testing.T) {
	for _, typ := range Types() {
		t.Run(typ.Short(), func(t *testing.T) {
			want, err := GenerateSchema(typ)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("schemas", typ.Short()+".json")
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Schema(typ)
			if err != nil {
				t.Fatalf("Schema(%s): %v (run: go test ./events -run TestSchemasUpToDate -update)", typ, err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s is stale (-generated +file); run: go test ./events -run TestSchemasUpToDate -update\n%s", path, diff)
			}
			var doc map[string]any
			if err := json.Unmarshal(got, &doc); err != nil {
				t.Fatalf("%s is not JSON: %v", path, err)
			}
			if doc["$id"] != typ.SchemaURI() {
				t.Errorf("%s $id = %v, want %s", path, doc["$id"], typ.SchemaURI())
			}
		})
	}
}
