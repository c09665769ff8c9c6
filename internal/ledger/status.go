package ledger

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
)

// Job states, in the order a job goes through them.
const (
	StateRequested  = "requested"  // job.requested seen
	StateQueued     = "queued"     // image.built: waiting for a run to start
	StateRunning    = "running"    // run.started or run.progress
	StateCancelling = "cancelling" // job.cancelled while running
	StateSucceeded  = events.StatusSucceeded
	StateFailed     = events.StatusFailed
	StateCancelled  = events.StatusCancelled
)

// Terminal reports whether a job in state s is over.
func Terminal(s string) bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// Entry is one event of a job's timeline.
type Entry struct {
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
}

// Progress is the latest run.progress of a job's run.
type Progress struct {
	Epoch   int                `json:"epoch"`
	Step    int64              `json:"step"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Time    time.Time          `json:"time"`
}

// JobStatus is a job's state folded from its events, in any order and with
// any duplicates: applying the same events in another order gives the same
// status.
type JobStatus struct {
	JobID           string                  `json:"jobId"`
	State           string                  `json:"state"`
	Reason          string                  `json:"reason,omitempty"`
	Model           *events.ModelRef        `json:"model,omitempty"`
	Dataset         *events.DatasetRef      `json:"dataset,omitempty"`
	Hyperparameters *events.Hyperparameters `json:"hyperparameters,omitempty"`
	Resources       *events.Resources       `json:"resources,omitempty"`
	RequestedBy     string                  `json:"requestedBy,omitempty"`
	Image           string                  `json:"image,omitempty"`
	ImageCacheHit   *bool                   `json:"imageCacheHit,omitempty"`
	RunID           string                  `json:"runId,omitempty"`
	Executor        string                  `json:"executor,omitempty"`
	GPUs            []string                `json:"gpus,omitempty"`
	Output          string                  `json:"output,omitempty"`
	Progress        *Progress               `json:"progress,omitempty"`
	Metrics         map[string]float64      `json:"metrics,omitempty"`
	Artifacts       []events.Artifact       `json:"artifacts,omitempty"`
	Log             string                  `json:"log,omitempty"`
	LogTail         string                  `json:"logTail,omitempty"`
	DurationSeconds float64                 `json:"durationSeconds,omitempty"`
	// The facts the state is derived from, whatever order they came in.
	RunStatus    string    `json:"runStatus,omitempty"`    // run.finished's status
	RunReason    string    `json:"runReason,omitempty"`    // and its reason
	ImageFailure string    `json:"imageFailure,omitempty"` // image.failed's reason: message
	CancelReason string    `json:"cancelReason,omitempty"`
	Cancelled    bool      `json:"cancelRequested,omitempty"`
	Started      bool      `json:"started,omitempty"` // run.started or run.progress seen
	Built        bool      `json:"built,omitempty"`   // image.built seen
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	// Timeline lists every event but run.progress (of which Progress keeps
	// the latest), by time then id, each once.
	Timeline []Entry `json:"timeline"`
}

// Apply folds one event into the status. Events of other jobs, and events
// outside the vocabulary, are refused.
func (s *JobStatus) Apply(e event.Event) error {
	p, err := events.Decode(e)
	if err != nil {
		return fmt.Errorf("decoding %s %s: %w", e.Type(), e.ID(), err)
	}
	if s.JobID == "" {
		s.JobID = p.JobID()
	}
	if p.JobID() != s.JobID {
		return fmt.Errorf("event %s is of job %q, not %q", e.ID(), p.JobID(), s.JobID)
	}
	t := e.Time().UTC()
	if s.Created.IsZero() || t.Before(s.Created) {
		s.Created = t
	}
	if t.After(s.Updated) {
		s.Updated = t
	}
	typ := events.Type(e.Type())
	if typ != events.RunProgress {
		s.addEntry(Entry{ID: e.ID(), Type: e.Type(), Source: e.Source(), Time: t})
	}
	switch d := p.(type) {
	case *events.JobRequestedData:
		s.setJob(*d)
	case *events.ImageBuiltData:
		s.setJob(d.Request)
		s.Image = d.Reference
		hit := d.CacheHit
		s.ImageCacheHit = &hit
		s.Built = true
	case *events.ImageFailedData:
		s.ImageFailure = d.Reason + ": " + d.Message
	case *events.RunStartedData:
		s.setJob(d.Job)
		s.RunID, s.Executor, s.GPUs, s.Output, s.Started = d.RunID, d.Executor, d.GPUs, d.Output, true
		if s.Image == "" {
			s.Image = d.Image
		}
	case *events.RunProgressData:
		if s.RunID == "" {
			s.RunID = d.RunID
		}
		s.Started = true
		if pr := s.Progress; pr == nil || later(d, pr) {
			s.Progress = &Progress{Epoch: d.Epoch, Step: d.Step, Metrics: d.Metrics, Time: d.Time.UTC()}
		}
	case *events.RunFinishedData:
		if s.RunID == "" {
			s.RunID = d.RunID
		}
		s.RunStatus, s.RunReason = d.Status, d.Reason
		s.Metrics, s.Artifacts, s.Log, s.LogTail, s.DurationSeconds = d.Metrics, d.Artifacts, d.Log, d.LogTail, d.DurationSeconds
	case *events.JobCancelledData:
		s.Cancelled, s.CancelReason = true, d.Reason
	default:
		return fmt.Errorf("event %s (%s) is not part of a job", e.ID(), e.Type())
	}
	s.derive()
	return nil
}

// later reports whether d comes after pr: by step, then epoch, then time.
func later(d *events.RunProgressData, pr *Progress) bool {
	switch {
	case d.Step != pr.Step:
		return d.Step > pr.Step
	case d.Epoch != pr.Epoch:
		return d.Epoch > pr.Epoch
	}
	return d.Time.After(pr.Time)
}

// derive sets State and Reason from the facts seen so far, so the status
// is the same whatever order its events came in: the run's own ending
// wins, then an image failure, then a cancel (cancelling while a run is
// under way, cancelled before one started).
func (s *JobStatus) derive() {
	switch {
	case s.RunStatus != "":
		s.State, s.Reason = s.RunStatus, s.RunReason
	case s.ImageFailure != "":
		s.State, s.Reason = StateFailed, s.ImageFailure
	case s.Cancelled && s.Started:
		s.State, s.Reason = StateCancelling, s.CancelReason
	case s.Cancelled:
		s.State, s.Reason = StateCancelled, strings.TrimSuffix("cancelled before it ran: "+s.CancelReason, ": ")
	case s.Started:
		s.State, s.Reason = StateRunning, ""
	case s.Built:
		s.State, s.Reason = StateQueued, ""
	default:
		s.State, s.Reason = StateRequested, ""
	}
}

func (s *JobStatus) setJob(j events.JobRequestedData) {
	if s.Model != nil {
		return
	}
	m, d, h, r := j.Model, j.Dataset, j.Hyperparameters, j.Resources
	s.Model, s.Dataset, s.Hyperparameters, s.Resources, s.RequestedBy = &m, &d, &h, &r, j.RequestedBy
}

func (s *JobStatus) addEntry(e Entry) {
	for _, have := range s.Timeline {
		if have.ID == e.ID {
			return
		}
	}
	s.Timeline = append(s.Timeline, e)
	sort.SliceStable(s.Timeline, func(i, j int) bool {
		a, b := s.Timeline[i], s.Timeline[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		return a.ID < b.ID
	})
}

// DatasetStatus is a dataset version's state: uploaded (with the jobs
// requested on it) or rejected (with every reason).
type DatasetStatus struct {
	Bucket  string              `json:"bucket"`
	Prefix  string              `json:"prefix"`
	Name    string              `json:"name,omitempty"`
	State   string              `json:"state"` // uploaded | rejected
	Digest  string              `json:"digest,omitempty"`
	Task    string              `json:"task,omitempty"`
	Format  string              `json:"format,omitempty"`
	Files   int                 `json:"files,omitempty"`
	Bytes   int64               `json:"bytes,omitempty"`
	Reasons []events.FieldError `json:"reasons,omitempty"`
	Jobs    []string            `json:"jobs,omitempty"`
	// Uploaded is when dataset-intake found the version complete (the
	// time of dataset.uploaded).
	Uploaded  time.Time `json:"uploaded,omitzero"`
	Updated   time.Time `json:"updated"`
	EventIDs  []string  `json:"eventIds"`
	lastEvent time.Time
}

// ModelRecord is one trained model with its lineage.
type ModelRecord struct {
	Model           events.ModelRef        `json:"model"`
	JobID           string                 `json:"jobId"`
	RunID           string                 `json:"runId"`
	Dataset         events.DatasetRef      `json:"dataset"`
	Image           string                 `json:"image"`
	Hyperparameters events.Hyperparameters `json:"hyperparameters"`
	Metrics         map[string]float64     `json:"metrics,omitempty"`
	Artifacts       []events.Artifact      `json:"artifacts"`
	Finished        time.Time              `json:"finished"`
}

// datasetPrefix is where a dataset event's version lives: the prefix of
// dataset.uploaded, the folder of a rejected manifest.
func datasetPrefix(p events.Payload) (bucket, prefix string, ok bool) {
	switch d := p.(type) {
	case *events.DatasetUploadedData:
		return d.Bucket, d.Prefix, true
	case *events.DatasetRejectedData:
		dir := path.Dir(d.Manifest)
		if dir == "." {
			dir = ""
		} else {
			dir += "/"
		}
		return d.Bucket, dir, true
	case *events.JobRequestedData:
		return d.Dataset.Bucket, d.Dataset.Prefix, true
	}
	return "", "", false
}

// Apply folds a dataset event, or a job.requested on the dataset.
func (s *DatasetStatus) Apply(e event.Event, p events.Payload) {
	for _, id := range s.EventIDs {
		if id == e.ID() {
			return
		}
	}
	s.EventIDs = append(s.EventIDs, e.ID())
	sort.Strings(s.EventIDs)
	if t := e.Time().UTC(); t.After(s.Updated) {
		s.Updated = t
	}
	switch d := p.(type) {
	case *events.DatasetUploadedData:
		s.Bucket, s.Prefix, s.Name, s.Digest, s.Task, s.Format, s.Files, s.Bytes = d.Bucket, d.Prefix, d.Name, d.Digest, d.Task, d.Format, d.Files, d.Bytes
		// The latest of upload and rejection wins: a fixed dataset put
		// again is uploaded.
		if t := e.Time().UTC(); !t.Before(s.lastEvent) || s.State == "" {
			s.State, s.lastEvent, s.Reasons = "uploaded", t, nil
		}
		if t := e.Time().UTC(); s.Uploaded.IsZero() || t.Before(s.Uploaded) {
			s.Uploaded = t
		}
	case *events.DatasetRejectedData:
		s.Bucket = d.Bucket
		if t := e.Time().UTC(); !t.Before(s.lastEvent) || s.State == "" {
			s.State, s.lastEvent, s.Reasons = "rejected", t, d.Reasons
		}
	case *events.JobRequestedData:
		s.Bucket, s.Prefix = d.Dataset.Bucket, d.Dataset.Prefix
		if s.Digest == "" {
			s.Digest, s.Task, s.Format = d.Dataset.Digest, d.Dataset.Task, d.Dataset.Format
		}
		if s.State == "" {
			s.State = "uploaded"
		}
		for _, j := range s.Jobs {
			if j == d.ID {
				return
			}
		}
		s.Jobs = append(s.Jobs, d.ID)
		sort.Strings(s.Jobs)
	}
}

// MarshalJSON keeps what UnmarshalJSON needs to go on folding.
func (s DatasetStatus) MarshalJSON() ([]byte, error) {
	type plain DatasetStatus
	return json.Marshal(struct {
		plain
		LastEvent time.Time `json:"lastEvent"`
	}{plain(s), s.lastEvent})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (s *DatasetStatus) UnmarshalJSON(b []byte) error {
	type plain DatasetStatus
	var v struct {
		plain
		LastEvent time.Time `json:"lastEvent"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = DatasetStatus(v.plain)
	s.lastEvent = v.LastEvent
	return nil
}
