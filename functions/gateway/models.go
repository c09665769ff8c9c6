package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/registry"
)

// modelQuery reads the filters of a model listing: framework, task, tag
// and q (text in the name, description or tags). Unknown parameters are
// refused, so that a misspelt filter is not silently ignored.
func modelQuery(w http.ResponseWriter, r *http.Request) (registry.Query, bool) {
	v := r.URL.Query()
	for k := range v {
		if !slices.Contains([]string{"framework", "task", "tag", "q"}, k) {
			fieldError(w, http.StatusBadRequest, api.CodeBadRequest, k, "unknown parameter (framework, task, tag and q filter models)")
			return registry.Query{}, false
		}
		if len(v[k]) > 1 {
			fieldError(w, http.StatusBadRequest, api.CodeBadRequest, k, "given %d times; give it once", len(v[k]))
			return registry.Query{}, false
		}
	}
	return registry.Query{Framework: v.Get("framework"), Task: v.Get("task"), Tag: v.Get("tag"), Text: v.Get("q")}, true
}

// ModelList selects models of c with q and counts them by facet.
func ModelList(c *registry.Catalog, q registry.Query) api.ModelList {
	ms := c.Filter(q)
	if ms == nil {
		ms = []registry.Model{}
	}
	out := api.ModelList{Models: ms, Count: len(ms), Total: len(c.Models()),
		Facets: api.Facets{Frameworks: map[string]int{}, Tasks: map[string]int{}, Tags: map[string]int{}}}
	for _, m := range ms {
		out.Facets.Frameworks[m.Framework]++
		out.Facets.Tasks[m.Task]++
		for _, t := range m.Tags {
			out.Facets.Tags[t]++
		}
	}
	return out
}

func (f *Function) listModels(w http.ResponseWriter, r *http.Request) {
	q, ok := modelQuery(w, r)
	if !ok {
		return
	}
	if q == (registry.Query{}) {
		// The whole catalog, the most asked for: encoded once (the
		// catalog does not change while the gateway runs).
		b := f.allModels()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		w.Write(b)
		return
	}
	writeJSON(w, http.StatusOK, ModelList(f.catalog, q))
}

func (f *Function) allModels() []byte {
	f.modelsOnce.Do(func() {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(ModelList(f.catalog, registry.Query{}))
		f.modelsJSON = b.Bytes()
	})
	return f.modelsJSON
}

func (f *Function) getModel(w http.ResponseWriter, r *http.Request) {
	m, err := f.catalog.Lookup(r.PathValue("framework"), r.PathValue("name"))
	if err != nil {
		writeError(w, http.StatusNotFound, api.CodeNotFound, "no model "+r.PathValue("framework")+"/"+r.PathValue("name")+" in the catalog")
		return
	}
	writeJSON(w, http.StatusOK, m)
}
