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

// rank orders the states: a fold keeps the highest, so duplicates and late
// arrivals never move a job backwards. Terminal states share the top rank.
var rank = map[string]int{
	"":              0,
	StateRequested:  1,
	StateQueued:     2,
	StateRunning:    3,
	StateCancelling: 4,
	StateSucceeded:  5,
	StateFailed:     5,
	StateCancelled:  5,
}

// Terminal reports whether a job in state s is over.
func Terminal(s string) bool { return rank[s] == 5 }

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
	CancelRequested bool                    `json:"cancelRequested,omitempty"`
	Created         time.Time               `json:"created"`
	Updated         time.Time               `json:"updated"`
	// Timeline lists every event but run.progress (of which Progress keeps
	// the latest), by time then id, each once.
	Timeline []Entry `json:"timeline"`
}

// terminalPriority settles which ending a job keeps when two arrive: the
// run's own ending over the image's failure over a cancel.
func terminalPriority(t events.Type) int {
	switch t {
	case events.RunFinished:
		return 3
	case events.ImageFailed:
		return 2
	case events.JobCancelled:
		return 1
	}
	return 0
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
		s.advance(StateRequested, "", typ)
	case *events.ImageBuiltData:
		s.setJob(d.Request)
		s.Image = d.Reference
		hit := d.CacheHit
		s.ImageCacheHit = &hit
		s.advance(StateQueued, "", typ)
	case *events.ImageFailedData:
		s.advance(StateFailed, d.Reason+": "+d.Message, typ)
	case *events.RunStartedData:
		s.setJob(d.Job)
		s.RunID, s.Executor, s.GPUs, s.Output = d.RunID, d.Executor, d.GPUs, d.Output
		if s.Image == "" {
			s.Image = d.Image
		}
		s.advance(StateRunning, "", typ)
	case *events.RunProgressData:
		if s.RunID == "" {
			s.RunID = d.RunID
		}
		if pr := s.Progress; pr == nil || d.Step > pr.Step || (d.Step == pr.Step && (d.Epoch > pr.Epoch || (d.Epoch == pr.Epoch && d.Time.After(pr.Time)))) {
			s.Progress = &Progress{Epoch: d.Epoch, Step: d.Step, Metrics: d.Metrics, Time: d.Time.UTC()}
		}
		s.advance(StateRunning, "", typ)
	case *events.RunFinishedData:
		if s.RunID == "" {
			s.RunID = d.RunID
		}
		s.Metrics, s.Artifacts, s.Log, s.LogTail, s.DurationSeconds = d.Metrics, d.Artifacts, d.Log, d.LogTail, d.DurationSeconds
		s.advance(d.Status, d.Reason, typ)
	case *events.JobCancelledData:
		s.CancelRequested = true
		switch {
		case Terminal(s.State):
		case rank[s.State] >= rank[StateRunning]:
			s.advance(StateCancelling, d.Reason, typ)
		default:
			s.advance(StateCancelled, "cancelled before it ran: "+d.Reason, typ)
		}
	default:
		return fmt.Errorf("event %s (%s) is not part of a job", e.ID(), e.Type())
	}
	return nil
}

// advance moves to state unless the job is past it; between two endings,
// the one of higher priority wins, whatever the order they came in.
func (s *JobStatus) advance(state, reason string, by events.Type) {
	switch {
	case Terminal(s.State) && Terminal(state):
		if terminalPriority(by) > terminalPriority(s.endedBy()) {
			s.State, s.Reason = state, strings.TrimSuffix(reason, ": ")
		}
	case rank[state] > rank[s.State]:
		s.State = state
		if reason != "" {
			s.Reason = strings.TrimSuffix(reason, ": ")
		}
	}
}

// endedBy is the type of the event that ended the job: the highest
// priority ending in the timeline.
func (s *JobStatus) endedBy() events.Type {
	var best events.Type
	for _, e := range s.Timeline {
		if t := events.Type(e.Type); terminalPriority(t) > terminalPriority(best) && t != events.Type("") {
			if t == events.JobCancelled && s.State != StateCancelled {
				continue
			}
			best = t
		}
	}
	return best
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
	Bucket    string              `json:"bucket"`
	Prefix    string              `json:"prefix"`
	Name      string              `json:"name,omitempty"`
	State     string              `json:"state"` // uploaded | rejected
	Digest    string              `json:"digest,omitempty"`
	Task      string              `json:"task,omitempty"`
	Format    string              `json:"format,omitempty"`
	Files     int                 `json:"files,omitempty"`
	Bytes     int64               `json:"bytes,omitempty"`
	Reasons   []events.FieldError `json:"reasons,omitempty"`
	Jobs      []string            `json:"jobs,omitempty"`
	Updated   time.Time           `json:"updated"`
	EventIDs  []string            `json:"eventIds"`
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
