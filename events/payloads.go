package events

import (
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
	// TaskCaptioning: image in, text out; COCO's captions files
	// (annotations/captions_<split>.json).
	TaskCaptioning = "captioning"

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
	tasks    = []string{TaskClassification, TaskDetection, TaskSegmentation, TaskPose, TaskCaptioning}
	formats  = []string{FormatImageFolder, FormatYOLO, FormatCOCO}
	statuses = []string{StatusSucceeded, StatusFailed, StatusCancelled}
)

// DatasetRef locates one version of a dataset in object storage.
type DatasetRef struct {
	Bucket string `json:"bucket" desc:"bucket holding the dataset" schema:"pattern=@bucket"`
	Prefix string `json:"prefix" desc:"key prefix of the dataset version, ending in /" schema:"minLength=1"`
	Digest string `json:"digest" desc:"content digest of the manifest and every file it lists" schema:"pattern=@digest"`
	Task   string `json:"task" desc:"what the dataset is labelled for" schema:"enum=@task"`
	Format string `json:"format" desc:"the on-disk layout of the dataset" schema:"enum=@format"`
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
func (DatasetUploadedData) JobID() string   { return "" }
func (DatasetUploadedData) validate(fields) {}

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
func (DatasetRejectedData) JobID() string   { return "" }
func (DatasetRejectedData) validate(fields) {}

// ModelRef names a model of the catalog.
type ModelRef struct {
	Framework string `json:"framework" desc:"framework image the model trains in (timm, ultralytics, huggingface, torchvision, custom, ...)" schema:"pattern=@name"`
	Name      string `json:"name" desc:"model name within the framework" schema:"pattern=@name"`
}

func (m ModelRef) String() string { return m.Framework + "/" + m.Name }

// AdapterRef is what trains a model inside its image: the training SDK's
// adapter and the model argument it gets (the catalog's adapter and
// adapterModel for the job: a timm name, a transformers model type or Hub
// id, an ultralytics YAML or weights file). The run agent passes them to
// vp_sdk.run as --adapter and --model.
type AdapterRef struct {
	Name  string `json:"name" desc:"the SDK adapter (torchvision, timm, huggingface, ultralytics, custom)" schema:"pattern=@name"`
	Model string `json:"model" desc:"the adapter's --model: what it builds or loads" schema:"minLength=1"`
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

// Resources a run asks for.
type Resources struct {
	GPUs     int    `json:"gpus" desc:"number of GPUs (0 for CPU)" schema:"minimum=0"`
	CPU      string `json:"cpu,omitempty" desc:"CPU limit, Kubernetes quantity"`
	Memory   string `json:"memory,omitempty" desc:"memory limit, Kubernetes quantity"`
	Executor string `json:"executor,omitempty" desc:"executor to use; empty means auto" schema:"enum=@executorChoice"`
}

// JobRequestedData asks for model Model to be trained on Dataset.
type JobRequestedData struct {
	ID              string          `json:"jobId" desc:"job id: a hash of dataset digest, model and hyperparameters" schema:"pattern=@jobID"`
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
	if len(*f.errs) == 0 {
		if want := JobID(j.Dataset.Digest, j.Model, j.Hyperparameters); want != j.ID {
			f.add("jobId", "%q does not match dataset digest, model and hyperparameters (want %s)", j.ID, want)
		}
	}
}

// JobCancelledData asks for a job to be cancelled: a queued run is dropped,
// a running one stopped (its run.finished says cancelled), and a job that
// has not started yet never starts.
type JobCancelledData struct {
	Job         string `json:"jobId" desc:"the job to cancel" schema:"pattern=@jobID"`
	Reason      string `json:"reason,omitempty" desc:"why, for people"`
	RequestedBy string `json:"requestedBy,omitempty" desc:"who or what asked"`
}

func (JobCancelledData) EventType() Type   { return JobCancelled }
func (d JobCancelledData) Subject() string { return d.Job }

// DeterministicID makes a repeated cancel of one job one event.
func (d JobCancelledData) DeterministicID() string { return hashID("cancel", d.Job) }
func (d JobCancelledData) JobID() string           { return d.Job }
func (JobCancelledData) validate(fields)           {}

// Layer describes one layer of a built image.
type Layer struct {
	Digest    string `json:"digest" desc:"compressed layer digest" schema:"pattern=@digest"`
	Size      int64  `json:"size" desc:"compressed size in bytes" schema:"minimum=0"`
	MediaType string `json:"mediaType,omitempty" desc:"layer media type"`
	Reused    bool   `json:"reused,omitempty" desc:"the registry already had the blob"`
}

// ImageBuiltData says that the framework image for a job exists.
type ImageBuiltData struct {
	Job         string           `json:"jobId" desc:"the job the image was built for" schema:"pattern=@jobID"`
	Request     JobRequestedData `json:"job" desc:"the whole job, so that the runner needs nothing else"`
	Framework   string           `json:"framework" desc:"framework image spec name" schema:"minLength=1"`
	Adapter     AdapterRef       `json:"adapter,omitzero,omitempty" desc:"what trains the model in the image (from the catalog)"`
	Reference   string           `json:"reference" desc:"image reference by digest (repo@sha256:...)" schema:"pattern=@refByDigest"`
	Layers      []Layer          `json:"layers" desc:"the image's layers, base first"`
	BytesPushed int64            `json:"bytesPushed" desc:"bytes uploaded to the registry" schema:"minimum=0"`
	BytesReused int64            `json:"bytesReused" desc:"bytes the registry already had" schema:"minimum=0"`
	CacheHit    bool             `json:"cacheHit" desc:"the image was resolved from cache without building"`
	DurationMS  int64            `json:"durationMs" desc:"build time in milliseconds" schema:"minimum=0"`
}

func (ImageBuiltData) EventType() Type           { return ImageBuilt }
func (d ImageBuiltData) Subject() string         { return d.Job }
func (d ImageBuiltData) DeterministicID() string { return hashID("img", d.Job, d.Reference) }
func (d ImageBuiltData) JobID() string           { return d.Job }
func (ImageBuiltData) validate(fields)           {}

// ImageFailedData says that the image for a job could not be built.
type ImageFailedData struct {
	Job       string `json:"jobId" desc:"the job the image was for" schema:"pattern=@jobID"`
	Framework string `json:"framework" desc:"framework image spec name" schema:"minLength=1"`
	Reason    string `json:"reason" desc:"short machine-readable cause" schema:"minLength=1"`
	Message   string `json:"message" desc:"what went wrong, for people"`
}

func (ImageFailedData) EventType() Type           { return ImageFailed }
func (d ImageFailedData) Subject() string         { return d.Job }
func (d ImageFailedData) DeterministicID() string { return "" }
func (d ImageFailedData) JobID() string           { return d.Job }
func (ImageFailedData) validate(fields)           {}

// RunStartedData says that a run was launched. It carries the whole job, so
// the run agent needs nothing else to start.
type RunStartedData struct {
	Job      JobRequestedData `json:"job" desc:"the job being run"`
	RunID    string           `json:"runId" desc:"run id; a restarted run keeps it and resumes" schema:"minLength=1"`
	Image    string           `json:"image" desc:"image reference by digest (the process executor, which runs the host's agent, may name it otherwise)" schema:"minLength=1"`
	Executor string           `json:"executor" desc:"executor that launched the run" schema:"enum=@executor"`
	Reason   string           `json:"executorReason,omitempty" desc:"why this executor was chosen (auto: what was found on the host)"`
	GPUs     []string         `json:"gpus,omitempty" desc:"GPU ids assigned to the run"`
	Output   string           `json:"output" desc:"s3:// URI prefix where artifacts go" schema:"pattern=@s3URI"`
	Adapter  AdapterRef       `json:"adapter,omitzero,omitempty" desc:"what trains the model in the image (image.built's); absent, the agent uses the model's framework and name"`
}

func (RunStartedData) EventType() Type           { return RunStarted }
func (d RunStartedData) Subject() string         { return d.RunID }
func (d RunStartedData) DeterministicID() string { return hashID("start", d.RunID) }
func (d RunStartedData) JobID() string           { return d.Job.ID }
func (d RunStartedData) validate(f fields)       { d.Job.validate(f.at("job")) }

// RunProgressData carries the metrics of one epoch or step.
type RunProgressData struct {
	Job     string             `json:"jobId" desc:"the job" schema:"pattern=@jobID"`
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
	if d.Time.IsZero() {
		f.add("time", "required")
	}
}

// Artifact is one file a run produced.
type Artifact struct {
	Name   string `json:"name" desc:"file name relative to the output directory" schema:"minLength=1"`
	URI    string `json:"uri" desc:"s3:// URI of the object" schema:"pattern=@s3URI"`
	SHA256 string `json:"sha256" desc:"hex sha256 of the content" schema:"pattern=@hex64"`
	Size   int64  `json:"size" desc:"size in bytes" schema:"minimum=0"`
}

// RunFinishedData is the one ending of a run.
type RunFinishedData struct {
	Job             string             `json:"jobId" desc:"the job" schema:"pattern=@jobID"`
	RunID           string             `json:"runId" desc:"the run" schema:"minLength=1"`
	Status          string             `json:"status" desc:"how the run ended" schema:"enum=@status"`
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
	if d.Status != StatusSucceeded && d.Status != "" && d.Reason == "" {
		f.add("reason", "required when status is %s", d.Status)
	}
}

// registry maps each type to a constructor of its zero payload.
var registry = map[Type]func() Payload{
	DatasetUploaded: func() Payload { return &DatasetUploadedData{} },
	DatasetRejected: func() Payload { return &DatasetRejectedData{} },
	JobRequested:    func() Payload { return &JobRequestedData{} },
	JobCancelled:    func() Payload { return &JobCancelledData{} },
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
