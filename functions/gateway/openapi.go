package gateway

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/vision-platform/vp/functions/gateway/api"
)

// openAPIYAML is the API's OpenAPI 3.1 document, written by hand; the
// tests keep it true (every route in it and nothing else, the answers'
// fields those of the Go types, and Schemathesis against the running
// gateway).
//
//go:embed openapi.yaml
var openAPIYAML []byte

var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("reading openapi.yaml: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("writing openapi.yaml as JSON: %w", err)
	}
	return b, nil
})

// OpenAPI is the API's OpenAPI document in JSON.
func OpenAPI() ([]byte, error) { return openAPIJSON() }

func (f *Function) openAPI(w http.ResponseWriter, r *http.Request) {
	b, err := OpenAPI()
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	w.Write(b)
}
