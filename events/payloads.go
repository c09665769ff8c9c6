package events

import (
	"regexp"
	"strings"
	"time"
)

// Payload is the data of one event type of the vocabulary.
type Payload interface {
	// EventType is the CloudEvent type this payload travels as.
	EventType() Type
	// Subject is the CloudEvent subject: what the event is about.
	Subject() string
	// DeterministicID is the event id the fact implies, or "" when the
	// event is not a deterministic fact and gets a random id.
	DeterministicID() string
	// JobID is the job the event belongs to, or "" before a job exists.
	JobID() string
	validate(f fields)
}

// Dataset tasks and formats.
const (
	TaskClassification = "classification"
	TaskDetection      = "detection"
	TaskSegmentation   = "segmentation"
	TaskPose           = "pose"

	FormatImageFolder = "imagefolder"
	FormatYOLO        = "yolo"
	FormatCOCO        = "coco"
)

// Run statuses of run.finished.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

var (
	tasks    = []string{TaskClassification, TaskDetection, TaskSegmentation, TaskPose}
	formats  = []string{FormatImageFolder, FormatYOLO, FormatCOCO}
	statuses = []string{StatusSucceeded, StatusFailed, StatusCancelled}

	digestRE    = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	hexRE       = regexp.MustCompile(`^[a-f0-9]{64}$`)
	jobIDRE     = regexp.MustCompile(`^job-[a-f0-9]{20}$`)
	bucketRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	modelNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// DatasetRef locates one version of a dataset in object storage.
type DatasetRef struct {
	Bucket string `json:"bucket" desc:"bucket holding the dataset" schema:"pattern=^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"`
	Prefix string `json:"prefix" desc:"key prefix of the dataset version, ending in /" schema:"minLength=1"`
	Digest string `json:"digest" desc:"content digest of the manifest and every file it lists" schema:"pattern=^sha256:[a-f0-9]{64}$"`
	Task   string `json:"task" desc:"what the dataset is labelled for" schema:"enum=classification|detection|segmentation|pose"`
	Format string `json:"format" desc:"the on-disk layout of the dataset" schema:"enum=imagefolder|yolo|coco"`
}

func (d DatasetRef) validate(f fields) {
	if !bucketRE.MatchString(d.Bucket) {
		f.add("bucket", "%q is not a valid bucket name", d.Bucket)
	}
	f.required("prefix", d.Prefix)
	if !digestRE.MatchString(d.Digest) {
		f.add("digest", "%q is not sha256:<64 hex>", d.Digest)
	}
	f.oneOf("task", d.Task, tasks...)
	f.oneOf("format", d.Format, formats...)
}

// DatasetUploadedData says that a complete dataset version is in storage.
type DatasetUploadedData struct {
	DatasetRef
	Name      string   `json:"name" desc:"dataset name" schema:"minLength=1"`
	Manifest  string   `json:"manifest" desc:"object key of the dataset manifest" schema:"minLength=1"`
	VersionID string   `json:"versionId,omitempty" desc:"object version of the manifest, when the bucket is versioned"`
	Files     int      `json:"files" desc:"number of files the manifest lists" schema:"minimum=1"`
	Bytes     int64    `json:"bytes" desc:"total size of those files" schema:"minimum=0"`
	Classes   []string `json:"classes,omitempty" desc:"class names, in label order"`
}

func (DatasetUploadedData) EventType() Type { return DatasetUploaded }
func (d DatasetUploadedData) Subject() string {
	return d.Bucket + "/" + strings.TrimSuffix(d.Prefix, "/")
}

// DeterministicID maps the same object version to the same id.
func (d DatasetUploadedData) DeterministicID() string {
	return DatasetUploadedID(d.Bucket, d.Manifest, d.VersionID, d.Digest)
}
func (DatasetUploadedData) JobID() string { return "" }
func (d DatasetUploadedData) validate(f fields) {
	d.DatasetRef.validate(f)
	f.required("name", d.Name)
	f.required("manifest", d.Manifest)
	if d.Files < 1 {
		f.add("files", "must be at least 1, got %d", d.Files)
	}
	if d.Bytes < 0 {
		f.add("bytes", "must not be negative, got %d", d.Bytes)
	}
}

// DatasetRejectedData says that a dataset failed validation.
type DatasetRejectedData struct {
	Bucket    string       `json:"bucket" desc:"bucket of the dataset" schema:"minLength=1"`
	Manifest  string       `json:"manifest" desc:"object key of the manifest that was rejected" schema:"minLength=1"`
	VersionID string       `json:"versionId,omitempty" desc:"object version of the manifest"`
	Reasons   []FieldError `json:"reasons" desc:"every reason the dataset was rejected" schema:"minItems=1"`
}

func (DatasetRejectedData) EventType() Type   { return DatasetRejected }
func (d DatasetRejectedData) Subject() string { return d.Bucket + "/" + d.Manifest }
func (d DatasetRejectedData) DeterministicID() string {
	return hashID("rej", d.Bucket, d.Manifest, d.VersionID)
}
func (DatasetRejectedData) JobID() string { return "" }
func (d DatasetRejectedData) validate(f fields) {
	f.required("bucket", d.Bucket)
	f.required("manifest", d.Manifest)
	if len(d.Reasons) == 0 {
		f.add("reasons", "at least one reason is required")
	}
	for i, r := range d.Reasons {
		f.at("reasons").index(i).required("reason", r.Reason)
	}
}

// ModelRef names a model of the catalog.
type ModelRef struct {
	Framework string `json:"framework" desc:"framework image the model trains in (timm, ultralytics, huggingface, torchvision, custom, ...)" schema:"minLength=1"`
	Name      string `json:"name" desc:"model name within the framework" schema:"minLength=1"`
}

func (m ModelRef) String() string { return m.Framework + "/" + m.Name }

func (m ModelRef) validate(f fields) {
	if !modelNameRE.MatchString(m.Framework) {
		f.add("framework", "%q is not a framework name", m.Framework)
	}
	if !modelNameRE.MatchString(m.Name) {
		f.add("name", "%q is not a model name", m.Name)
	}
}

// Hyperparameters of a training run. Extra carries framework-specific
// settings through unchanged.
type Hyperparameters struct {
	Epochs       int            `json:"epochs" desc:"passes over the training set" schema:"minimum=1"`
	BatchSize    int            `json:"batchSize" desc:"images per step" schema:"minimum=1"`
	LearningRate float64        `json:"learningRate" desc:"initial learning rate" schema:"exclusiveMinimum=0"`
	ImageSize    int            `json:"imageSize,omitempty" desc:"input side length in pixels" schema:"minimum=8"`
	Seed         int64          `json:"seed,omitempty" desc:"random seed"`
	Pretrained   bool           `json:"pretrained,omitempty" desc:"start from pretrained weights (downloaded at run time)"`
	Extra        map[string]any `json:"extra,omitempty" desc:"framework-specific settings"`
}

func (h Hyperparameters) validate(f fields) {
	if h.Epochs < 1 {
		f.add("epochs", "must be at least 1, got %d", h.Epochs)
	}
	if h.BatchSize < 1 {
		f.add("batchSize", "must be at least 1, got %d", h.BatchSize)
	}
	if !(h.LearningRate > 0) {
		f.add("learningRate", "must be greater than 0, got %v", h.LearningRate)
	}
	if h.ImageSize != 0 && h.ImageSize < 8 {
		f.add("imageSize", "must be at least 8, got %d", h.ImageSize)
	}
}

// Resources a run asks for.
type Resources struct {
	GPUs     int    `json:"gpus" desc:"number of GPUs (0 for CPU)" schema:"minimum=0"`
	CPU      string `json:"cpu,omitempty" desc:"CPU limit, Kubernetes quantity"`
	Memory   string `json:"memory,omitempty" desc:"memory limit, Kubernetes quantity"`
	Executor string `json:"executor,omitempty" desc:"executor to use; empty means auto" schema:"enum=|auto|process|docker|kubernetes"`
}

func (r Resources) validate(f fields) {
	if r.GPUs < 0 {
		f.add("gpus", "must not be negative, got %d", r.GPUs)
	}
	switch r.Executor {
	case "", "auto", "process", "docker", "kubernetes":
	default:
		f.add("executor", "%q is not one of auto, process, docker, kubernetes", r.Executor)
	}
}

// JobRequestedData asks for model Model to be trained on Dataset.
type JobRequestedData struct {
	ID              string          `json:"jobId" desc:"job id: a hash of dataset digest, model and hyperparameters" schema:"pattern=^job-[a-f0-9]{20}$"`
	Dataset         DatasetRef      `json:"dataset" desc:"the dataset version to train on"`
	Model           ModelRef        `json:"model" desc:"the model to train"`
	Hyperparameters Hyperparameters `json:"hyperparameters" desc:"training settings"`
	Resources       Resources       `json:"resources" desc:"what the run needs"`
	RequestedBy     string          `json:"requestedBy,omitempty" desc:"who or what asked for the job"`
}

func (JobRequestedData) EventType() Type           { return JobRequested }
func (j JobRequestedData) Subject() string         { return j.ID }
func (j JobRequestedData) DeterministicID() string { return j.ID }
func (j JobRequestedData) JobID() string           { return j.ID }
func (j JobRequestedData) validate(f fields) {
	j.Dataset.validate(f.at("dataset"))
	j.Model.validate(f.at("model"))
	j.Hyperparameters.validate(f.at("hyperparameters"))
	j.Resources.validate(f.at("resources"))
	if !jobIDRE.MatchString(j.ID) {
		f.add("jobId", "%q is not job-<20 hex>", j.ID)
	} else if len(*f.errs) == 0 {
		if want := JobID(j.Dataset.Digest, j.Model, j.Hyperparameters); want != j.ID {
			f.add("jobId", "%q does not match dataset digest, model and hyperparameters (want %s)", j.ID, want)
		}
	}
}

// Layer describes one layer of a built image.
type Layer struct {
	Digest    string `json:"digest" desc:"compressed layer digest" schema:"pattern=^sha256:[a-f0-9]{64}$"`
	Size      int64  `json:"size" desc:"compressed size in bytes" schema:"minimum=0"`
	MediaType string `json:"mediaType,omitempty" desc:"layer media type"`
	Reused    bool   `json:"reused,omitempty" desc:"the registry already had the blob"`
}

// ImageBuiltData says that the framework image for a job exists.
type ImageBuiltData struct {
	Job         string  `json:"jobId" desc:"the job the image was built for" schema:"pattern=^job-[a-f0-9]{20}$"`
	Framework   string  `json:"framework" desc:"framework image spec name" schema:"minLength=1"`
	Reference   string  `json:"reference" desc:"image reference by digest (repo@sha256:...)" schema:"pattern=@sha256:[a-f0-9]{64}$"`
	Layers      []Layer `json:"layers" desc:"the image's layers, base first"`
	BytesPushed int64   `json:"bytesPushed" desc:"bytes uploaded to the registry" schema:"minimum=0"`
	BytesReused int64   `json:"bytesReused" desc:"bytes the registry already had" schema:"minimum=0"`
	CacheHit    bool    `json:"cacheHit" desc:"the image was resolved from cache without building"`
	DurationMS  int64   `json:"durationMs" desc:"build time in milliseconds" schema:"minimum=0"`
}

func (ImageBuiltData) EventType() Type           { return ImageBuilt }
func (d ImageBuiltData) Subject() string         { return d.Job }
func (d ImageBuiltData) DeterministicID() string { return hashID("img", d.Job, d.Reference) }
func (d ImageBuiltData) JobID() string           { return d.Job }
func (d ImageBuiltData) validate(f fields) {
	if !jobIDRE.MatchString(d.Job) {
		f.add("jobId", "%q is not job-<20 hex>", d.Job)
	}
	f.required("framework", d.Framework)
	if i := strings.LastIndex(d.Reference, "@"); i <= 0 || !digestRE.MatchString(d.Reference[i+1:]) {
		f.add("reference", "%q is not a reference by digest", d.Reference)
	}
	for i, l := range d.Layers {
		if !digestRE.MatchString(l.Digest) {
			f.at("layers").index(i).add("digest", "%q is not sha256:<64 hex>", l.Digest)
		}
	}
}

// ImageFailedData says that the image for a job could not be built.
type ImageFailedData struct {
	Job       string `json:"jobId" desc:"the job the image was for" schema:"pattern=^job-[a-f0-9]{20}$"`
	Framework string `json:"framework" desc:"framework image spec name" schema:"minLength=1"`
	Reason    string `json:"reason" desc:"short machine-readable cause" schema:"minLength=1"`
	Message   string `json:"message" desc:"what went wrong, for people"`
}

func (ImageFailedData) EventType() Type           { return ImageFailed }
func (d ImageFailedData) Subject() string         { return d.Job }
func (d ImageFailedData) DeterministicID() string { return "" }
func (d ImageFailedData) JobID() string           { return d.Job }
func (d ImageFailedData) validate(f fields) {
	if !jobIDRE.MatchString(d.Job) {
		f.add("jobId", "%q is not job-<20 hex>", d.Job)
	}
	f.required("framework", d.Framework)
	f.required("reason", d.Reason)
}

// RunStartedData says that a run was launched. It carries the whole job, so
// the run agent needs nothing else to start.
type RunStartedData struct {
	Job      JobRequestedData `json:"job" desc:"the job being run"`
	RunID    string           `json:"runId" desc:"run id; a restarted run keeps it and resumes" schema:"minLength=1"`
	Image    string           `json:"image" desc:"image reference by digest" schema:"minLength=1"`
	Executor string           `json:"executor" desc:"executor that launched the run" schema:"enum=process|docker|kubernetes"`
	GPUs     []string         `json:"gpus,omitempty" desc:"GPU ids assigned to the run"`
	Output   string           `json:"output" desc:"s3:// URI prefix where artifacts go" schema:"pattern=^s3://"`
}

func (RunStartedData) EventType() Type           { return RunStarted }
func (d RunStartedData) Subject() string         { return d.RunID }
func (d RunStartedData) DeterministicID() string { return hashID("start", d.RunID) }
func (d RunStartedData) JobID() string           { return d.Job.ID }
func (d RunStartedData) validate(f fields) {
	d.Job.validate(f.at("job"))
	f.required("runId", d.RunID)
	f.required("image", d.Image)
	f.oneOf("executor", d.Executor, "process", "docker", "kubernetes")
	if !strings.HasPrefix(d.Output, "s3://") {
		f.add("output", "%q is not an s3:// URI", d.Output)
	}
}

// RunProgressData carries the metrics of one epoch or step.
type RunProgressData struct {
	Job     string             `json:"jobId" desc:"the job" schema:"pattern=^job-[a-f0-9]{20}$"`
	RunID   string             `json:"runId" desc:"the run" schema:"minLength=1"`
	Epoch   int                `json:"epoch" desc:"epoch, from 1" schema:"minimum=0"`
	Step    int64              `json:"step" desc:"global step" schema:"minimum=0"`
	Metrics map[string]float64 `json:"metrics" desc:"metric name to value (loss, accuracy, mAP50, lr, ...)"`
	Time    time.Time          `json:"time" desc:"when the metrics were taken" schema:"format=date-time"`
}

func (RunProgressData) EventType() Type   { return RunProgress }
func (d RunProgressData) Subject() string { return d.RunID }
func (d RunProgressData) DeterministicID() string {
	return hashID("prog", d.RunID, itoa(int64(d.Epoch)), itoa(d.Step))
}
func (d RunProgressData) JobID() string { return d.Job }
func (d RunProgressData) validate(f fields) {
	if !jobIDRE.MatchString(d.Job) {
		f.add("jobId", "%q is not job-<20 hex>", d.Job)
	}
	f.required("runId", d.RunID)
	if d.Epoch < 0 {
		f.add("epoch", "must not be negative")
	}
	if d.Step < 0 {
		f.add("step", "must not be negative")
	}
	if d.Time.IsZero() {
		f.add("time", "required")
	}
}

// Artifact is one file a run produced.
type Artifact struct {
	Name   string `json:"name" desc:"file name relative to the output directory" schema:"minLength=1"`
	URI    string `json:"uri" desc:"s3:// URI of the object" schema:"pattern=^s3://"`
	SHA256 string `json:"sha256" desc:"hex sha256 of the content" schema:"pattern=^[a-f0-9]{64}$"`
	Size   int64  `json:"size" desc:"size in bytes" schema:"minimum=0"`
}

// RunFinishedData is the one ending of a run.
type RunFinishedData struct {
	Job             string             `json:"jobId" desc:"the job" schema:"pattern=^job-[a-f0-9]{20}$"`
	RunID           string             `json:"runId" desc:"the run" schema:"minLength=1"`
	Status          string             `json:"status" desc:"how the run ended" schema:"enum=succeeded|failed|cancelled"`
	Reason          string             `json:"reason,omitempty" desc:"why it failed or was cancelled"`
	Metrics         map[string]float64 `json:"metrics,omitempty" desc:"final metrics"`
	Artifacts       []Artifact         `json:"artifacts,omitempty" desc:"files produced, with digests"`
	Log             string             `json:"log,omitempty" desc:"s3:// URI of the full log"`
	LogTail         string             `json:"logTail,omitempty" desc:"last lines of the log, on failure"`
	DurationSeconds float64            `json:"durationSeconds" desc:"wall time of the run" schema:"minimum=0"`
}

func (RunFinishedData) EventType() Type           { return RunFinished }
func (d RunFinishedData) Subject() string         { return d.RunID }
func (d RunFinishedData) DeterministicID() string { return hashID("fin", d.RunID) }
func (d RunFinishedData) JobID() string           { return d.Job }
func (d RunFinishedData) validate(f fields) {
	if !jobIDRE.MatchString(d.Job) {
		f.add("jobId", "%q is not job-<20 hex>", d.Job)
	}
	f.required("runId", d.RunID)
	f.oneOf("status", d.Status, statuses...)
	if d.Status != StatusSucceeded && d.Status != "" && d.Reason == "" {
		f.add("reason", "required when status is %s", d.Status)
	}
	if d.DurationSeconds < 0 {
		f.add("durationSeconds", "must not be negative")
	}
	for i, a := range d.Artifacts {
		g := f.at("artifacts").index(i)
		g.required("name", a.Name)
		if !strings.HasPrefix(a.URI, "s3://") {
			g.add("uri", "%q is not an s3:// URI", a.URI)
		}
		if !hexRE.MatchString(a.SHA256) {
			g.add("sha256", "%q is not 64 hex digits", a.SHA256)
		}
	}
}

// registry maps each type to a constructor of its zero payload.
var registry = map[Type]func() Payload{
	DatasetUploaded: func() Payload { return &DatasetUploadedData{} },
	DatasetRejected: func() Payload { return &DatasetRejectedData{} },
	JobRequested:    func() Payload { return &JobRequestedData{} },
	ImageBuilt:      func() Payload { return &ImageBuiltData{} },
	ImageFailed:     func() Payload { return &ImageFailedData{} },
	RunStarted:      func() Payload { return &RunStartedData{} },
	RunProgress:     func() Payload { return &RunProgressData{} },
	RunFinished:     func() Payload { return &RunFinishedData{} },
}

// NewPayload returns a pointer to the zero payload of t.
func NewPayload(t Type) (Payload, bool) {
	mk, ok := registry[t]
	if !ok {
		return nil, false
	}
	return mk(), true
}
