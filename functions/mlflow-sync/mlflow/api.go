package mlflow

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Run statuses.
const (
	StatusRunning  = "RUNNING"
	StatusFinished = "FINISHED"
	StatusFailed   = "FAILED"
	StatusKilled   = "KILLED"
)

// Terminal reports whether a run in status s has ended.
func Terminal(s string) bool {
	return s == StatusFinished || s == StatusFailed || s == StatusKilled
}

// Limits of one runs/log-batch request (MLflow's MAX_*_PER_BATCH);
// LogBatch splits bigger batches.
const (
	MaxMetricsPerBatch  = 1000
	MaxParamsPerBatch   = 100
	MaxTagsPerBatch     = 100
	MaxEntitiesPerBatch = 1000
)

// Metric is one value of a metric at a step; Timestamp is in Unix
// milliseconds.
type Metric struct {
	Key       string  `json:"key"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
	Step      int64   `json:"step"`
}

// Param is a run's parameter: written once, the same value again is
// accepted.
type Param struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Tag is a run's, an experiment's, a registered model's or a model
// version's tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Experiment groups runs.
type Experiment struct {
	ID               string `json:"experiment_id"`
	Name             string `json:"name"`
	ArtifactLocation string `json:"artifact_location"`
	LifecycleStage   string `json:"lifecycle_stage"`
	Tags             []Tag  `json:"tags"`
}

// RunInfo is a run's metadata.
type RunInfo struct {
	RunID          string `json:"run_id"`
	RunName        string `json:"run_name"`
	ExperimentID   string `json:"experiment_id"`
	Status         string `json:"status"`
	StartTime      int64  `json:"start_time"`
	EndTime        int64  `json:"end_time"`
	ArtifactURI    string `json:"artifact_uri"`
	LifecycleStage string `json:"lifecycle_stage"`
}

// RunData is what was logged to a run; Metrics holds each metric's latest
// value.
type RunData struct {
	Metrics []Metric `json:"metrics"`
	Params  []Param  `json:"params"`
	Tags    []Tag    `json:"tags"`
}

// Run is one MLflow run.
type Run struct {
	Info RunInfo `json:"info"`
	Data RunData `json:"data"`
}

// Tag is the value of the run's tag key.
func (r Run) Tag(key string) (string, bool) {
	for _, t := range r.Data.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// ModelVersion is one version of a registered model.
type ModelVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source"`
	RunID   string `json:"run_id"`
	Status  string `json:"status"`
	Tags    []Tag  `json:"tags"`
}

// ExperimentByName is the experiment named name (ErrNotFound when none
// is).
func (c *Client) ExperimentByName(ctx context.Context, name string) (Experiment, error) {
	var out struct {
		Experiment Experiment `json:"experiment"`
	}
	err := c.get(ctx, "experiments/get-by-name", url.Values{"experiment_name": {name}}, &out)
	return out.Experiment, err
}

// CreateExperiment creates an experiment and returns its id
// (ErrAlreadyExists when the name is taken).
func (c *Client) CreateExperiment(ctx context.Context, name, artifactLocation string, tags []Tag) (string, error) {
	in := struct {
		Name             string `json:"name"`
		ArtifactLocation string `json:"artifact_location,omitempty"`
		Tags             []Tag  `json:"tags,omitempty"`
	}{name, artifactLocation, tags}
	var out struct {
		ID string `json:"experiment_id"`
	}
	err := c.post(ctx, "experiments/create", in, &out)
	return out.ID, err
}

// SetExperimentTag sets a tag of an experiment.
func (c *Client) SetExperimentTag(ctx context.Context, experimentID, key, value string) error {
	return c.post(ctx, "experiments/set-experiment-tag", map[string]string{"experiment_id": experimentID, "key": key, "value": value}, nil)
}

// SearchExperiments lists the active experiments that filter selects
// (MLflow's filter syntax, e.g. "tags.team = 'vision'"), every page.
func (c *Client) SearchExperiments(ctx context.Context, filter string) ([]Experiment, error) {
	var all []Experiment
	token := ""
	for {
		in := map[string]any{"max_results": 1000, "filter": filter, "view_type": "ACTIVE_ONLY"}
		if token != "" {
			in["page_token"] = token
		}
		var out struct {
			Experiments []Experiment `json:"experiments"`
			Next        string       `json:"next_page_token"`
		}
		if err := c.post(ctx, "experiments/search", in, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Experiments...)
		if out.Next == "" {
			return all, nil
		}
		token = out.Next
	}
}

// CreateRunRequest is what runs/create takes; StartTime is in Unix
// milliseconds.
type CreateRunRequest struct {
	ExperimentID string `json:"experiment_id"`
	RunName      string `json:"run_name,omitempty"`
	StartTime    int64  `json:"start_time,omitempty"`
	Tags         []Tag  `json:"tags,omitempty"`
}

// CreateRun starts a run (status RUNNING).
func (c *Client) CreateRun(ctx context.Context, r CreateRunRequest) (Run, error) {
	var out struct {
		Run Run `json:"run"`
	}
	err := c.post(ctx, "runs/create", r, &out)
	return out.Run, err
}

// GetRun reads a run with its latest metrics, params and tags.
func (c *Client) GetRun(ctx context.Context, runID string) (Run, error) {
	var out struct {
		Run Run `json:"run"`
	}
	err := c.get(ctx, "runs/get", url.Values{"run_id": {runID}}, &out)
	return out.Run, err
}

// SearchRuns lists the active runs of experimentIDs that filter selects
// (e.g. "tags.vp_run_id = 'run-1'"), every page.
func (c *Client) SearchRuns(ctx context.Context, experimentIDs []string, filter string) ([]Run, error) {
	var all []Run
	token := ""
	for {
		in := map[string]any{"experiment_ids": experimentIDs, "filter": filter, "run_view_type": "ACTIVE_ONLY", "max_results": 1000}
		if token != "" {
			in["page_token"] = token
		}
		var out struct {
			Runs []Run  `json:"runs"`
			Next string `json:"next_page_token"`
		}
		if err := c.post(ctx, "runs/search", in, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Runs...)
		if out.Next == "" {
			return all, nil
		}
		token = out.Next
	}
}

// LogBatch logs metrics, params and tags to a run in as few runs/log-batch
// requests as MLflow's limits allow (one, for up to 1,000 metrics, 100
// params and 100 tags). Each request is atomic for its metrics; a batch
// split in several is not.
func (c *Client) LogBatch(ctx context.Context, runID string, metrics []Metric, params []Param, tags []Tag) error {
	for len(metrics) > 0 || len(params) > 0 || len(tags) > 0 {
		np := min(len(params), MaxParamsPerBatch)
		nt := min(len(tags), MaxTagsPerBatch)
		nm := min(len(metrics), MaxMetricsPerBatch, MaxEntitiesPerBatch-np-nt)
		in := struct {
			RunID   string   `json:"run_id"`
			Metrics []Metric `json:"metrics,omitempty"`
			Params  []Param  `json:"params,omitempty"`
			Tags    []Tag    `json:"tags,omitempty"`
		}{runID, metrics[:nm], params[:np], tags[:nt]}
		if err := c.post(ctx, "runs/log-batch", in, nil); err != nil {
			return err
		}
		metrics, params, tags = metrics[nm:], params[np:], tags[nt:]
	}
	return nil
}

// LogMetric logs one metric value in a request of its own.
func (c *Client) LogMetric(ctx context.Context, runID string, m Metric) error {
	in := struct {
		RunID string `json:"run_id"`
		Metric
	}{runID, m}
	return c.post(ctx, "runs/log-metric", in, nil)
}

// SetTag sets one tag of a run.
func (c *Client) SetTag(ctx context.Context, runID, key, value string) error {
	return c.post(ctx, "runs/set-tag", map[string]string{"run_id": runID, "key": key, "value": value}, nil)
}

// UpdateRun sets a run's status and end time (Unix milliseconds; 0 leaves
// it).
func (c *Client) UpdateRun(ctx context.Context, runID, status string, endTime int64) error {
	in := struct {
		RunID   string `json:"run_id"`
		Status  string `json:"status"`
		EndTime int64  `json:"end_time,omitempty"`
	}{runID, status, endTime}
	return c.post(ctx, "runs/update", in, nil)
}

// MetricHistory is every value logged for one metric of a run, every page.
func (c *Client) MetricHistory(ctx context.Context, runID, key string) ([]Metric, error) {
	var all []Metric
	token := ""
	for {
		q := url.Values{"run_id": {runID}, "metric_key": {key}, "max_results": {strconv.Itoa(25000)}}
		if token != "" {
			q.Set("page_token", token)
		}
		var out struct {
			Metrics []Metric `json:"metrics"`
			Next    string   `json:"next_page_token"`
		}
		if err := c.get(ctx, "metrics/get-history", q, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Metrics...)
		if out.Next == "" {
			return all, nil
		}
		token = out.Next
	}
}

// FileInfo is one entry of a run's artifact folder: a file, or a folder
// (IsDir) whose entries are listed by ListArtifacts with its Path.
type FileInfo struct {
	Path     string `json:"path"` // relative to the run's artifact root
	IsDir    bool   `json:"is_dir"`
	FileSize int64  `json:"file_size"`
}

// ListArtifacts lists the entries of a run's artifact folder at dir ("":
// its root), as the tracking server reads them from the artifact store,
// every page.
func (c *Client) ListArtifacts(ctx context.Context, runID, dir string) ([]FileInfo, error) {
	var all []FileInfo
	token := ""
	for {
		q := url.Values{"run_id": {runID}}
		if dir != "" {
			q.Set("path", dir)
		}
		if token != "" {
			q.Set("page_token", token)
		}
		var out struct {
			Files []FileInfo `json:"files"`
			Next  string     `json:"next_page_token"`
		}
		if err := c.get(ctx, "artifacts/list", q, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Files...)
		if out.Next == "" {
			return all, nil
		}
		token = out.Next
	}
}

// CreateRegisteredModel registers a model name (ErrAlreadyExists when it
// is).
func (c *Client) CreateRegisteredModel(ctx context.Context, name, description string, tags []Tag) error {
	in := struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		Tags        []Tag  `json:"tags,omitempty"`
	}{name, description, tags}
	return c.post(ctx, "registered-models/create", in, nil)
}

// CreateModelVersionRequest is what model-versions/create takes.
type CreateModelVersionRequest struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	RunID       string `json:"run_id,omitempty"`
	Description string `json:"description,omitempty"`
	Tags        []Tag  `json:"tags,omitempty"`
}

// CreateModelVersion adds a version to a registered model.
func (c *Client) CreateModelVersion(ctx context.Context, r CreateModelVersionRequest) (ModelVersion, error) {
	var out struct {
		ModelVersion ModelVersion `json:"model_version"`
	}
	err := c.post(ctx, "model-versions/create", r, &out)
	return out.ModelVersion, err
}

// SearchModelVersions lists the model versions filter selects (e.g.
// "name='m' and run_id='abc'"), every page.
func (c *Client) SearchModelVersions(ctx context.Context, filter string) ([]ModelVersion, error) {
	var all []ModelVersion
	token := ""
	for {
		q := url.Values{"filter": {filter}, "max_results": {"1000"}}
		if token != "" {
			q.Set("page_token", token)
		}
		var out struct {
			ModelVersions []ModelVersion `json:"model_versions"`
			Next          string         `json:"next_page_token"`
		}
		if err := c.get(ctx, "model-versions/search", q, &out); err != nil {
			return nil, err
		}
		all = append(all, out.ModelVersions...)
		if out.Next == "" {
			return all, nil
		}
		token = out.Next
	}
}

// Literal makes s a string literal of MLflow's search filters: in single
// quotes, or double quotes when s holds a single quote (the filter parser
// has no escapes; a value holding both cannot be searched for).
func Literal(s string) (string, error) {
	switch {
	case !strings.Contains(s, "'"):
		return "'" + s + "'", nil
	case !strings.Contains(s, `"`):
		return `"` + s + `"`, nil
	}
	return "", fmt.Errorf("%q holds both quote characters: %w", s, ErrUnquotable)
}
