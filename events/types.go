package events

import "strings"

// Type is a CloudEvent type of the platform's vocabulary.
type Type string

// Prefix starts every type of the vocabulary.
const Prefix = "dev.visionplatform."

// The vocabulary (see ARCHITECTURE.md).
const (
	DatasetUploaded Type = Prefix + "dataset.uploaded"
	DatasetRejected Type = Prefix + "dataset.rejected"
	JobRequested    Type = Prefix + "job.requested"
	JobCancelled    Type = Prefix + "job.cancelled"
	ImageBuilt      Type = Prefix + "image.built"
	ImageFailed     Type = Prefix + "image.failed"
	RunStarted      Type = Prefix + "run.started"
	RunProgress     Type = Prefix + "run.progress"
	RunFinished     Type = Prefix + "run.finished"
)

// Extension attribute names carried by platform events.
const (
	// ExtJobID correlates every event of one job.
	ExtJobID = "jobid"
	// ExtTraceparent carries the W3C trace context across hops.
	ExtTraceparent = "traceparent"
)

// ContentType is the datacontenttype of every platform event.
const ContentType = "application/json"

// SchemaBase is the URI prefix of the payload schemas named in dataschema.
// The schema files live in events/schemas/ under the name after the prefix.
const SchemaBase = "https://vision-platform.github.io/vp/events/schemas/"

// Types lists the vocabulary in the order of the flow.
func Types() []Type {
	return []Type{DatasetUploaded, DatasetRejected, JobRequested, JobCancelled, ImageBuilt, ImageFailed, RunStarted, RunProgress, RunFinished}
}

// Short is the type without the platform prefix, e.g. "dataset.uploaded".
func (t Type) Short() string { return strings.TrimPrefix(string(t), Prefix) }

// Known reports whether t belongs to the vocabulary.
func (t Type) Known() bool {
	_, ok := registry[t]
	return ok
}

// SchemaURI is the dataschema of the payload of t.
func (t Type) SchemaURI() string { return SchemaBase + t.Short() + ".json" }
