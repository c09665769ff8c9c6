package api

import (
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/registry"
)

// Prefix is the path every API route starts with.
const Prefix = "/api/v1"

// Error codes of ErrorBody.Code.
const (
	CodeBadRequest   = "bad_request"  // 400: the request cannot be read (JSON, a parameter)
	CodeUnauthorized = "unauthorized" // 401: no token, or a wrong one
	CodeForbidden    = "forbidden"    // 403: the token's scope does not allow the route
	CodeNotFound     = "not_found"    // 404
	CodeMethod       = "method_not_allowed"
	CodeConflict     = "conflict"  // 409: the state forbids it (a finished job cancelled, a dataset already there)
	CodeTooLarge     = "too_large" // 413: the body is over the limit
	CodeUnsupported  = "unsupported_media_type"
	CodeInvalid      = "invalid"     // 422: the request reads, but the catalog or the ledger refuses it
	CodeTooMany      = "too_many"    // 429: past a limit (event streams)
	CodeUnavailable  = "unavailable" // 502/503: the store or the broker did not answer
	CodeInternal     = "internal"    // 500
)

// ErrorBody is the JSON body of every error the gateway answers: a code
// from the list above, a message, and the fields at fault (Field is the
// first of them, for clients that show one).
type ErrorBody struct {
	Code    string              `json:"code"`
	Message string              `json:"error"`
	Field   string              `json:"field,omitempty"`
	Fields  []events.FieldError `json:"fields,omitempty"`
}

// ModelList is the answer of GET /models and /models/list.
type ModelList struct {
	// Models are the models the filters select, in catalog order.
	Models []registry.Model `json:"models"`
	// Count is len(Models); Total the size of the catalog.
	Count int `json:"count"`
	Total int `json:"total"`
	// Facets count the selected models by framework, task and tag.
	Facets Facets `json:"facets"`
}

// Facets count models by framework, task and tag.
type Facets struct {
	Frameworks map[string]int `json:"frameworks"`
	Tasks      map[string]int `json:"tasks"`
	Tags       map[string]int `json:"tags"`
}

// DatasetSelector names the dataset of a job: a dataset the ledger holds as
// uploaded (by Name, or by Bucket and Prefix), or one the ledger does not
// know, given whole (Bucket, Prefix, Digest, Task and Format).
type DatasetSelector struct {
	Name   string `json:"name,omitempty"`
	Bucket string `json:"bucket,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Digest string `json:"digest,omitempty"`
	Task   string `json:"task,omitempty"`
	Format string `json:"format,omitempty"`
}

// JobRequest is the body of POST /jobs. Hyperparameters left zero take
// the catalog's recommended values.
type JobRequest struct {
	// Model is framework/name, as the catalog names it.
	Model           string                 `json:"model"`
	Dataset         DatasetSelector        `json:"dataset"`
	Hyperparameters events.Hyperparameters `json:"hyperparameters"`
	Resources       events.Resources       `json:"resources"`
	// RequestedBy says who asks (default: the token's name).
	RequestedBy string `json:"requestedBy,omitempty"`
}

// JobAccepted is the answer of POST /jobs (202).
type JobAccepted struct {
	JobID string `json:"jobId"`
	// State is the job's state in the ledger, "requested" for a new job.
	State string `json:"state"`
	// Created is false when nothing was emitted: the ledger has the job
	// already, or the Idempotency-Key was used before.
	Created bool `json:"created"`
	// Job is the job.requested payload, the catalog's defaults filled.
	Job events.JobRequestedData `json:"job"`
}

// JobSummary is one job of a listing.
type JobSummary struct {
	JobID       string             `json:"jobId"`
	State       string             `json:"state"`
	Reason      string             `json:"reason,omitempty"`
	Model       string             `json:"model,omitempty"`
	Dataset     *events.DatasetRef `json:"dataset,omitempty"`
	RunID       string             `json:"runId,omitempty"`
	RequestedBy string             `json:"requestedBy,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	Created     time.Time          `json:"created"`
	Updated     time.Time          `json:"updated"`
}

// JobList is a page of GET /jobs.
type JobList struct {
	Jobs []JobSummary `json:"jobs"`
	// NextCursor, when set, fetches the next page (cursor=...).
	NextCursor string `json:"nextCursor,omitempty"`
}

// ProgressPoint is one run.progress of a job's run.
type ProgressPoint struct {
	Epoch   int                `json:"epoch"`
	Step    int64              `json:"step"`
	Metrics map[string]float64 `json:"metrics"`
	Time    time.Time          `json:"time"`
}

// Progress is the answer of GET /jobs/{id}/progress: every run.progress
// of the job, by step.
type Progress struct {
	JobID  string          `json:"jobId"`
	Points []ProgressPoint `json:"points"`
}

// CancelRequest is the (optional) body of POST /jobs/{id}/cancel.
type CancelRequest struct {
	Reason string `json:"reason,omitempty"`
}

// CancelAccepted is the answer of POST /jobs/{id}/cancel (202).
type CancelAccepted struct {
	JobID   string `json:"jobId"`
	EventID string `json:"eventId"`
	State   string `json:"state"`
}

// Artifact is one output of a run with a presigned URL to get it.
type Artifact struct {
	events.Artifact
	URL string `json:"url"`
}

// Artifacts is the answer of GET /jobs/{id}/artifacts.
type Artifacts struct {
	JobID     string     `json:"jobId"`
	RunID     string     `json:"runId,omitempty"`
	Expires   time.Time  `json:"expires"`
	Artifacts []Artifact `json:"artifacts"`
	// Log is the run's full log, when it has one.
	Log *Artifact `json:"log,omitempty"`
}

// UploadFile is one file of a dataset upload request: its path relative
// to the dataset's folder and its size.
type UploadFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Train is the auto-train block the gateway writes into dataset.yaml.
type Train struct {
	Model           string                 `json:"model"`
	Hyperparameters events.Hyperparameters `json:"hyperparameters"`
	Resources       events.Resources       `json:"resources"`
}

// UploadRequest is the body of POST /datasets.
type UploadRequest struct {
	// Name is the dataset's name; it is uploaded under Name/ (or
	// Name/Version/) of the datasets bucket.
	Name    string   `json:"name"`
	Version string   `json:"version,omitempty"`
	Task    string   `json:"task"`
	Format  string   `json:"format"`
	Classes []string `json:"classes,omitempty"`
	// Train, when set, trains once the dataset is complete.
	Train   *Train       `json:"train,omitempty"`
	Retrain bool         `json:"retrain,omitempty"`
	Files   []UploadFile `json:"files"`
}

// Part is one part of a multipart upload.
type Part struct {
	Number int   `json:"number"`
	Size   int64 `json:"size"`
	// URL is the presigned PUT of the part.
	URL string `json:"url"`
	// ETag is set when the store holds the part already: its ETag, the
	// MD5 of its bytes (a client skips the part when its own bytes have
	// that MD5).
	ETag string `json:"etag,omitempty"`
}

// UploadTarget says how to upload one file: a single presigned PUT (URL),
// or the parts of a multipart upload (UploadID, Parts; then POST
// /datasets/uploads/complete). Uploaded says the store holds an object of
// the file's size already (ETag is its ETag: the MD5 of a file of one
// part, MD5-of-part-MD5s-N of one of N parts): a client whose file has
// that ETag skips it; a file of one part can be put again through URL.
type UploadTarget struct {
	Path     string `json:"path"`
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	Uploaded bool   `json:"uploaded"`
	ETag     string `json:"etag,omitempty"`
	URL      string `json:"url,omitempty"`
	UploadID string `json:"uploadId,omitempty"`
	Parts    []Part `json:"parts,omitempty"`
}

// Manifest is the dataset.yaml to upload last, through URL.
type Manifest struct {
	Key  string `json:"key"`
	URL  string `json:"url"`
	Body string `json:"body"`
}

// Upload is the answer of POST /datasets: where each file goes.
type Upload struct {
	Bucket   string         `json:"bucket"`
	Prefix   string         `json:"prefix"`
	Expires  time.Time      `json:"expires"`
	PartSize int64          `json:"partSize"`
	Files    []UploadTarget `json:"files"`
	Manifest Manifest       `json:"manifest"`
}

// CompleteRequest is the body of POST /datasets/uploads/complete: the
// multipart upload of Key to complete once its parts add up to Size.
type CompleteRequest struct {
	Key      string `json:"key"`
	UploadID string `json:"uploadId"`
	Size     int64  `json:"size"`
}

// Completed is the answer of POST /datasets/uploads/complete.
type Completed struct {
	Key  string `json:"key"`
	ETag string `json:"etag"`
	Size int64  `json:"size"`
}

// DatasetList is the answer of GET /datasets: every dataset version the
// ledger knows, the latest change first.
type DatasetList struct {
	Datasets []ledger.DatasetStatus `json:"datasets"`
}

// EventsAccepted is the answer of POST /events (202).
type EventsAccepted struct {
	Accepted int      `json:"accepted"`
	IDs      []string `json:"ids"`
}

// ImageLayer is one layer of a framework image.
type ImageLayer struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// SharedWith names the other framework images holding this layer.
	SharedWith []string `json:"sharedWith,omitempty"`
}

// Image is the latest built image of one framework image spec.
type Image struct {
	Framework string       `json:"framework"`
	Reference string       `json:"reference"`
	Layers    []ImageLayer `json:"layers"`
	Bytes     int64        `json:"bytes"`
	// SharedBytes are the bytes of layers another image holds too.
	SharedBytes int64     `json:"sharedBytes"`
	Built       time.Time `json:"built"`
	JobID       string    `json:"jobId"`
}

// Images is the answer of GET /images.
type Images struct {
	Images []Image `json:"images"`
	// Bytes is the sum of every image's bytes; StoredBytes counts each
	// distinct layer once, as a registry stores them.
	Bytes       int64 `json:"bytes"`
	StoredBytes int64 `json:"storedBytes"`
}
