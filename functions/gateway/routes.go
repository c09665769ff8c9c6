package gateway

import (
	"net/http"

	"github.com/vision-platform/vp/functions/gateway/api"
)

// Handle serves the gateway: the API under /api/v1, the OpenAPI document
// at /openapi.json, the console's pages and static files, and on POST /
// the events the broker delivers.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	f.handler.ServeHTTP(w, r)
}

func (f *Function) apiRoutes() []route {
	p := api.Prefix
	return []route{
		{method: http.MethodGet, pattern: "/openapi.json", name: "openapi", h: f.openAPI},
		{method: http.MethodPost, pattern: "/{$}", name: "delivery", h: f.delivery},
		{method: http.MethodGet, pattern: p + "/models/list", scope: ScopeRead, name: "models", h: f.listModels},
		{method: http.MethodGet, pattern: p + "/models", scope: ScopeRead, name: "models", h: f.listModels},
		{method: http.MethodGet, pattern: p + "/models/{framework}/{name}", scope: ScopeRead, name: "model", h: f.getModel},
		{method: http.MethodPost, pattern: p + "/jobs", scope: ScopeWrite, name: "job_create", h: f.createJob},
		{method: http.MethodGet, pattern: p + "/jobs", scope: ScopeRead, name: "jobs", h: f.listJobs},
		{method: http.MethodGet, pattern: p + "/jobs/{id}", scope: ScopeRead, name: "job", h: f.getJob},
		{method: http.MethodGet, pattern: p + "/jobs/{id}/events", scope: ScopeRead, name: "job_events", h: f.streamJob},
		{method: http.MethodGet, pattern: p + "/jobs/{id}/progress", scope: ScopeRead, name: "job_progress", h: f.jobProgress},
		{method: http.MethodPost, pattern: p + "/jobs/{id}/cancel", scope: ScopeWrite, name: "job_cancel", h: f.cancelJob},
		{method: http.MethodGet, pattern: p + "/jobs/{id}/artifacts", scope: ScopeRead, name: "job_artifacts", h: f.jobArtifacts},
		{method: http.MethodPost, pattern: p + "/datasets", scope: ScopeWrite, name: "dataset_upload", h: f.createUpload},
		{method: http.MethodGet, pattern: p + "/datasets", scope: ScopeRead, name: "datasets", h: f.listDatasets},
		{method: http.MethodPost, pattern: p + "/datasets/uploads/complete", scope: ScopeWrite, name: "dataset_complete", h: f.completeUpload},
		{method: http.MethodPost, pattern: p + "/events", scope: ScopeWrite, name: "events", h: f.postEvents},
		{method: http.MethodGet, pattern: p + "/images", scope: ScopeRead, name: "images", h: f.listImages},
	}
}
