package mlflowsync

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/mlflow-sync/mlflow"
	"github.com/vision-platform/vp/internal/objstore"
)

// Tags and params the function writes. Run tags name the platform's ids;
// TagRunID is how a run is found again after a restart.
const (
	TagManaged       = "vp_managed" // on the experiments the function uses
	TagRunID         = "vp_run_id"
	TagJobID         = "vp_job_id"
	TagDataset       = "vp_dataset" // s3://bucket/prefix/
	TagDatasetDigest = "vp_dataset_digest"
	TagImage         = "vp_image"
	TagExecutor      = "vp_executor"
	TagOutput        = "vp_output"
	TagStatus        = "vp_status" // succeeded, failed, cancelled
	TagReason        = "vp_reason"
	TagLog           = "vp_log"
	TagLogTail       = "vp_log_tail"
	TagDuration      = "vp_duration_seconds"
	TagArtifact      = "vp_artifact." // + the artifact's name: {"uri","sha256","size"}
	// TagArtifactsCopied ("true") marks a run whose artifacts were copied
	// into its MLflow artifact folder: a redelivered run.finished copies
	// nothing again.
	TagArtifactsCopied = "vp_artifacts_copied"
	TagModelVersion    = "vp_model_version" // registered-model/version
	TagWeights         = "vp_weights"       // on a model version: its source
	TagWeightsSHA256   = "vp_weights_sha256"

	ParamModel     = "model" // framework/name
	ParamFramework = "framework"
	ParamModelName = "model_name"

	// MetricEpoch is logged beside each run.progress's metrics, at its step.
	MetricEpoch = "epoch"
	// FinalPrefix prefixes run.finished's metrics (logged at step 0): the
	// run's history keeps the values of each step.
	FinalPrefix = "final/"
)

// maxTagValue is the longest tag value every MLflow store takes.
const maxTagValue = 5000

// ExperimentName is the MLflow experiment of a dataset's runs:
// bucket/prefix without its trailing slash, as dataset.uploaded's subject.
func ExperimentName(d events.DatasetRef) string {
	return d.Bucket + "/" + strings.TrimSuffix(d.Prefix, "/")
}

// mlflowStatus is the MLflow status of a run.finished status.
func mlflowStatus(s string) string {
	switch s {
	case events.StatusSucceeded:
		return mlflow.StatusFinished
	case events.StatusCancelled:
		return mlflow.StatusKilled
	}
	return mlflow.StatusFailed
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UnixMilli()
}

// started creates the run's MLflow run (once) in its dataset's experiment
// and logs its params and tags (again on redelivery: MLflow takes the same
// values again).
func (f *Function) started(ctx context.Context, e event.Event, d *events.RunStartedData) (result, error) {
	s := f.runs.acquire(d.RunID)
	defer f.runs.release(s)
	res, err := f.syncStarted(ctx, s, e, d)
	if err != nil {
		s.reset()
	}
	return res, err
}

func (f *Function) syncStarted(ctx context.Context, s *runState, e event.Event, d *events.RunStartedData) (result, error) {
	expID, err := f.experiment(ctx, d.Job.Dataset)
	if err != nil {
		return "", err
	}
	if err := f.find(ctx, s, d.RunID, expID); err != nil {
		return "", err
	}
	tags := startedTags(d)
	res := resultDuplicate
	if s.mlflowID == "" {
		r, err := f.client.CreateRun(ctx, mlflow.CreateRunRequest{ExperimentID: expID, RunName: d.RunID, StartTime: millis(e.Time()), Tags: tags})
		if err != nil {
			// The experiment may be gone (deleted in MLflow): read it again
			// next time.
			f.forgetExperiment(ExperimentName(d.Job.Dataset))
			return "", fmt.Errorf("creating the MLflow run: %w", err)
		}
		s.loaded, s.mlflowID, s.experimentID, s.status, s.history = true, r.Info.RunID, expID, r.Info.Status, map[metricKey]bool{}
		res = resultSynced
	}
	params, err := startedParams(d)
	if err != nil {
		return "", err
	}
	if err := f.client.LogBatch(ctx, s.mlflowID, nil, params, tags); err != nil {
		return "", fmt.Errorf("logging the run's params and tags: %w", err)
	}
	return res, nil
}

func startedTags(d *events.RunStartedData) []mlflow.Tag {
	return []mlflow.Tag{
		{Key: TagRunID, Value: d.RunID},
		{Key: TagJobID, Value: d.Job.ID},
		{Key: TagDataset, Value: "s3://" + d.Job.Dataset.Bucket + "/" + d.Job.Dataset.Prefix},
		{Key: TagDatasetDigest, Value: d.Job.Dataset.Digest},
		{Key: TagImage, Value: d.Image},
		{Key: TagExecutor, Value: d.Executor},
		{Key: TagOutput, Value: d.Output},
	}
}

// startedParams are the model and the hyperparameters, as the job's JSON
// names them (extra settings as extra.<name>, JSON-encoded).
func startedParams(d *events.RunStartedData) ([]mlflow.Param, error) {
	params := []mlflow.Param{
		{Key: ParamModel, Value: d.Job.Model.String()},
		{Key: ParamFramework, Value: d.Job.Model.Framework},
		{Key: ParamModelName, Value: d.Job.Model.Name},
	}
	b, err := json.Marshal(d.Job.Hyperparameters)
	if err != nil {
		return nil, fmt.Errorf("encoding the hyperparameters: %w", err)
	}
	var hp map[string]json.RawMessage
	if err := json.Unmarshal(b, &hp); err != nil {
		return nil, fmt.Errorf("decoding the hyperparameters: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(hp)) {
		if k == "extra" {
			var extra map[string]json.RawMessage
			if err := json.Unmarshal(hp[k], &extra); err != nil {
				return nil, fmt.Errorf("decoding the extra hyperparameters: %w", err)
			}
			for _, x := range slices.Sorted(maps.Keys(extra)) {
				params = append(params, mlflow.Param{Key: cleanKey("extra." + x), Value: paramValue(extra[x])})
			}
			continue
		}
		params = append(params, mlflow.Param{Key: cleanKey(k), Value: paramValue(hp[k])})
	}
	return params, nil
}

// paramValue is a JSON value as a param: a string unquoted, anything else
// as JSON, cut to 500 characters (the oldest stores' limit).
func paramValue(raw json.RawMessage) string {
	var s string
	v := string(raw)
	if json.Unmarshal(raw, &s) == nil {
		v = s
	}
	return cut(v, 500)
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && (s[n]&0xC0) == 0x80 { // not inside a UTF-8 sequence
		n--
	}
	return s[:n]
}

// cleanKey makes k a name MLflow takes for a metric, param or tag: only
// letters, digits, _ - . space / and :, and a clean relative path.
func cleanKey(k string) string {
	b := []byte(k)
	for i, c := range b {
		ok := c == '_' || c == '-' || c == '.' || c == ' ' || c == '/' || c == ':' ||
			(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			b[i] = '_'
		}
	}
	var parts []string
	for _, p := range strings.Split(string(b), "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			p = "__"
		}
		parts = append(parts, p)
	}
	k = strings.Join(parts, "/")
	if k == "" {
		k = "_"
	}
	return cut(k, 250)
}

// progress logs a run.progress's metrics at its step, each (key, step)
// once.
func (f *Function) progress(ctx context.Context, d *events.RunProgressData) (result, error) {
	s := f.runs.acquire(d.RunID)
	defer f.runs.release(s)
	ms := make([]mlflow.Metric, 0, len(d.Metrics)+1)
	ts := millis(d.Time)
	for _, k := range slices.Sorted(maps.Keys(d.Metrics)) {
		ms = append(ms, mlflow.Metric{Key: cleanKey(k), Value: d.Metrics[k], Timestamp: ts, Step: d.Step})
	}
	if _, ok := d.Metrics[MetricEpoch]; !ok {
		ms = append(ms, mlflow.Metric{Key: MetricEpoch, Value: float64(d.Epoch), Timestamp: ts, Step: d.Step})
	}
	res, err := f.logMetrics(ctx, s, d.RunID, ms, nil)
	if err != nil {
		s.reset()
	}
	return res, err
}

// finished logs a run.finished's final metrics, status, artifacts and log,
// ends the MLflow run (a terminal run is never made running again:
// run.progress only logs metrics), copies the artifacts into the MLflow
// run's artifact folder when it has the store, and registers a succeeded
// run's model when configured.
func (f *Function) finished(ctx context.Context, e event.Event, d *events.RunFinishedData) (result, error) {
	s := f.runs.acquire(d.RunID)
	defer f.runs.release(s)
	res, err := f.syncFinished(ctx, s, e, d)
	if err != nil {
		s.reset()
	}
	return res, err
}

func (f *Function) syncFinished(ctx context.Context, s *runState, e event.Event, d *events.RunFinishedData) (result, error) {
	end := millis(e.Time())
	ms := make([]mlflow.Metric, 0, len(d.Metrics))
	for _, k := range slices.Sorted(maps.Keys(d.Metrics)) {
		ms = append(ms, mlflow.Metric{Key: cleanKey(FinalPrefix + k), Value: d.Metrics[k], Timestamp: end, Step: 0})
	}
	tags := []mlflow.Tag{
		{Key: TagStatus, Value: d.Status},
		{Key: TagDuration, Value: strconv.FormatFloat(d.DurationSeconds, 'f', -1, 64)},
	}
	if d.Reason != "" {
		tags = append(tags, mlflow.Tag{Key: TagReason, Value: cut(d.Reason, maxTagValue)})
	}
	if d.Log != "" {
		tags = append(tags, mlflow.Tag{Key: TagLog, Value: d.Log})
	}
	if d.LogTail != "" {
		tags = append(tags, mlflow.Tag{Key: TagLogTail, Value: cutTail(d.LogTail, maxTagValue)})
	}
	for _, a := range d.Artifacts {
		v, err := json.Marshal(struct {
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Size   int64  `json:"size"`
		}{a.URI, a.SHA256, a.Size})
		if err != nil {
			return "", fmt.Errorf("encoding artifact %s: %w", a.Name, err)
		}
		tags = append(tags, mlflow.Tag{Key: cleanKey(TagArtifact + a.Name), Value: string(v)})
	}
	res, err := f.logMetrics(ctx, s, d.RunID, ms, tags)
	if err != nil {
		return "", err
	}
	if want := mlflowStatus(d.Status); s.status != want {
		if err := f.client.UpdateRun(ctx, s.mlflowID, want, end); err != nil {
			return "", fmt.Errorf("ending the MLflow run: %w", err)
		}
		s.status, res = want, resultSynced
	}
	copying := f.store != nil && len(d.Artifacts) > 0
	registering := f.register && d.Status == events.StatusSucceeded
	if !copying && !registering {
		return res, nil
	}
	r, err := f.client.GetRun(ctx, s.mlflowID)
	if err != nil {
		return "", fmt.Errorf("reading MLflow run %s: %w", s.mlflowID, err)
	}
	var folder *objstore.URI // the run's artifact folder, holding its artifacts
	if copying {
		var now bool
		if folder, now, err = f.copyArtifacts(ctx, r, d); err != nil {
			return "", err
		}
		if now {
			res = resultSynced
		}
	}
	if registering {
		created, err := f.registerModel(ctx, r, d, folder)
		if err != nil {
			return "", err
		}
		if created {
			res = resultSynced
		}
	}
	return res, nil
}

// copyArtifacts makes the run's artifacts visible in MLflow: each is
// copied (server-side where the store can) to <artifact_uri>/<name> of its
// MLflow run, once, and the run is then tagged TagArtifactsCopied. It
// returns the artifact folder when the artifacts are in it (copied now or
// before), and whether it copied them now. A folder that is not in the
// runs bucket of the platform's store (an experiment made elsewhere with
// another artifact location) is left alone, as is an artifact missing
// from the store or with a name that is not a relative path; a store that
// fails is an error (the broker redelivers, and copying again is
// harmless).
func (f *Function) copyArtifacts(ctx context.Context, r mlflow.Run, d *events.RunFinishedData) (*objstore.URI, bool, error) {
	log := f.log.With().Str("run", d.RunID).Str("artifact_uri", r.Info.ArtifactURI).Logger()
	folder, err := objstore.ParseURI(r.Info.ArtifactURI)
	if err != nil || folder.Bucket != f.bucket {
		log.Info().Str("runs_bucket", f.bucket).Msg("not copying the run's artifacts: its MLflow artifact folder is not in the runs bucket of the platform's store")
		return nil, false, nil
	}
	if v, _ := r.Tag(TagArtifactsCopied); v == "true" {
		return &folder, false, nil
	}
	copied := 0
	for _, a := range d.Artifacts {
		alog := log.With().Str("artifact", a.Name).Str("uri", a.URI).Logger()
		name, ok := artifactPath(a.Name)
		src, err := objstore.ParseURI(a.URI)
		if !ok || err != nil {
			alog.Warn().Msg("not copying an artifact whose name is not a relative path or whose URI is not s3://")
			continue
		}
		dst := folder.Join(name)
		info, err := f.copyObject(ctx, dst, src)
		if errors.Is(err, objstore.ErrNotFound) {
			// The source, or a bucket: only a missing source is skipped.
			if _, serr := f.store.Stat(ctx, src); errors.Is(serr, objstore.ErrNotFound) {
				alog.Warn().Msg("not copying an artifact that is not in the store")
				continue
			}
		}
		if err != nil {
			return nil, false, fmt.Errorf("copying artifact %s to the MLflow run's artifacts: %w", a.Name, err)
		}
		if info.Size != a.Size {
			alog.Warn().Int64("size", info.Size).Int64("announced", a.Size).Msg("the artifact's size in the store is not the one run.finished announced")
		}
		copied++
	}
	if err := f.client.SetTag(ctx, r.Info.RunID, TagArtifactsCopied, "true"); err != nil {
		return nil, false, fmt.Errorf("tagging the run's artifacts copied: %w", err)
	}
	log.Info().Int("copied", copied).Int("skipped", len(d.Artifacts)-copied).Msg("copied the run's artifacts into its MLflow artifact folder")
	return &folder, true, nil
}

// copyObject copies src to dst within the store: server-side when the
// store can, through this process otherwise.
func (f *Function) copyObject(ctx context.Context, dst, src objstore.URI) (objstore.Info, error) {
	if c, ok := f.store.(objstore.Copier); ok {
		return c.Copy(ctx, dst, src)
	}
	body, info, err := f.store.Get(ctx, src)
	if err != nil {
		return objstore.Info{}, err
	}
	defer body.Close()
	var opts []objstore.PutOption
	if info.ContentType != "" {
		opts = append(opts, objstore.WithContentType(info.ContentType))
	}
	return f.store.Put(ctx, dst, body, info.Size, opts...)
}

// artifactPath is an artifact's name as a clean path relative to the
// artifact folder; false for a name that would leave it.
func artifactPath(name string) (string, bool) {
	p := path.Clean(name)
	if strings.HasPrefix(name, "/") || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return "", false
	}
	return p, true
}

// cutTail keeps the last n bytes of s (a log's tail matters most).
func cutTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && (s[i]&0xC0) == 0x80 {
		i++
	}
	return s[i:]
}

// logMetrics logs the metrics of ms the run's history lacks (each (key,
// step) once) and tags, in one runs/log-batch request (or one
// runs/log-metric per metric, WithOneRequestPerMetric).
func (f *Function) logMetrics(ctx context.Context, s *runState, runID string, ms []mlflow.Metric, tags []mlflow.Tag) (result, error) {
	if err := f.find(ctx, s, runID, ""); err != nil {
		return "", err
	}
	if s.mlflowID == "" {
		return "", ErrNotStarted
	}
	if err := f.readHistory(ctx, s); err != nil {
		return "", err
	}
	todo := ms[:0:0]
	for _, m := range ms {
		if !s.history[metricKey{m.Key, m.Step}] {
			todo = append(todo, m)
		}
	}
	res := resultDuplicate
	if len(todo) > 0 {
		res = resultSynced
	}
	if f.perMetric {
		for _, m := range todo {
			if err := f.client.LogMetric(ctx, s.mlflowID, m); err != nil {
				return "", fmt.Errorf("logging metric %s: %w", m.Key, err)
			}
			s.history[metricKey{m.Key, m.Step}] = true
		}
		todo = nil
	}
	if len(todo) > 0 || len(tags) > 0 {
		if err := f.client.LogBatch(ctx, s.mlflowID, todo, nil, tags); err != nil {
			return "", fmt.Errorf("logging metrics: %w", err)
		}
	}
	for _, m := range todo {
		s.history[metricKey{m.Key, m.Step}] = true
	}
	return res, nil
}

// find fills s from the MLflow run tagged with runID, searched for in
// experiment expID, or in every experiment the function manages when ""; s
// stays unloaded (mlflowID "") when there is none.
func (f *Function) find(ctx context.Context, s *runState, runID, expID string) error {
	if s.loaded {
		return nil
	}
	lit, err := mlflow.Literal(runID)
	if err != nil {
		return err
	}
	var ids []string
	if expID != "" {
		ids = []string{expID}
	} else {
		exps, err := f.client.SearchExperiments(ctx, "tags."+TagManaged+" = 'true'")
		if err != nil {
			return fmt.Errorf("listing the experiments: %w", err)
		}
		for _, x := range exps {
			ids = append(ids, x.ID)
		}
	}
	var found []mlflow.Run
	for len(ids) > 0 {
		n := min(len(ids), 100)
		runs, err := f.client.SearchRuns(ctx, ids[:n], "tags."+TagRunID+" = "+lit)
		if err != nil {
			return fmt.Errorf("searching the MLflow run of %s: %w", runID, err)
		}
		found = append(found, runs...)
		ids = ids[n:]
	}
	if len(found) == 0 {
		return nil
	}
	// Two runs for one platform run would be a bug (or two instances of
	// this function): keep to the first made.
	slices.SortFunc(found, func(a, b mlflow.Run) int {
		return cmp.Or(cmp.Compare(a.Info.StartTime, b.Info.StartTime), strings.Compare(a.Info.RunID, b.Info.RunID))
	})
	if len(found) > 1 {
		f.log.Warn().Str("run", runID).Int("mlflow_runs", len(found)).Str("kept", found[0].Info.RunID).Msg("several MLflow runs carry this run id")
	}
	r := found[0]
	s.loaded, s.mlflowID, s.experimentID, s.status, s.history = true, r.Info.RunID, r.Info.ExperimentID, r.Info.Status, nil
	return nil
}

// readHistory reads which (key, step) points the run has, once per
// loading of s.
func (f *Function) readHistory(ctx context.Context, s *runState) error {
	if s.history != nil {
		return nil
	}
	r, err := f.client.GetRun(ctx, s.mlflowID)
	if err != nil {
		return fmt.Errorf("reading MLflow run %s: %w", s.mlflowID, err)
	}
	s.status = r.Info.Status
	h := map[metricKey]bool{}
	for _, m := range r.Data.Metrics {
		hist, err := f.client.MetricHistory(ctx, s.mlflowID, m.Key)
		if err != nil {
			return fmt.Errorf("reading the history of metric %s: %w", m.Key, err)
		}
		for _, p := range hist {
			h[metricKey{p.Key, p.Step}] = true
		}
	}
	s.history = h
	return nil
}

// experiment is the id of the dataset's experiment, made on first use
// with the runs bucket as its artifact location.
func (f *Function) experiment(ctx context.Context, d events.DatasetRef) (string, error) {
	name := ExperimentName(d)
	f.expMu.Lock()
	id, ok := f.expIDs[name]
	f.expMu.Unlock()
	if ok {
		return id, nil
	}
	x, err := f.client.ExperimentByName(ctx, name)
	switch {
	case errors.Is(err, mlflow.ErrNotFound):
		id, err = f.client.CreateExperiment(ctx, name, f.artifacts, []mlflow.Tag{
			{Key: TagManaged, Value: "true"}, {Key: TagDataset, Value: "s3://" + d.Bucket + "/" + d.Prefix},
		})
		if errors.Is(err, mlflow.ErrAlreadyExists) { // made meanwhile
			return f.experiment(ctx, d)
		}
		if err != nil {
			return "", fmt.Errorf("creating experiment %q: %w", name, err)
		}
		f.log.Info().Str("experiment", name).Str("experiment_id", id).Msg("created the dataset's MLflow experiment")
	case err != nil:
		return "", fmt.Errorf("reading experiment %q: %w", name, err)
	case x.LifecycleStage == "deleted":
		return "", fmt.Errorf("experiment %q (%s): %w", name, x.ID, ErrExperimentDeleted)
	default:
		id = x.ID
		managed := false
		for _, t := range x.Tags {
			managed = managed || (t.Key == TagManaged && t.Value == "true")
		}
		if !managed { // made by someone else: searched from now on
			if err := f.client.SetExperimentTag(ctx, id, TagManaged, "true"); err != nil {
				return "", fmt.Errorf("tagging experiment %q: %w", name, err)
			}
		}
	}
	f.expMu.Lock()
	f.expIDs[name] = id
	f.expMu.Unlock()
	return id, nil
}

func (f *Function) forgetExperiment(name string) {
	f.expMu.Lock()
	delete(f.expIDs, name)
	f.expMu.Unlock()
}

// registerModel makes the run's weights a version of its registered model
// (once per run) and tags the run with it; created reports whether it made
// the version now. The version's source is the weights' copy in the run's
// artifact folder when folder holds the artifacts, their own URI
// otherwise; their own URI and sha256 are the version's tags.
func (f *Function) registerModel(ctx context.Context, r mlflow.Run, d *events.RunFinishedData, folder *objstore.URI) (created bool, err error) {
	file, uri, sha := weights(d.Artifacts)
	if uri == "" {
		f.log.Warn().Str("run", d.RunID).Msg("not registering the model: no weights/ among the run's artifacts")
		return false, nil
	}
	source := uri
	if folder != nil {
		source = folder.Join(file).String()
	}
	mlflowID := r.Info.RunID
	params := map[string]string{}
	for _, p := range r.Data.Params {
		params[p.Key] = p.Value
	}
	name := strings.NewReplacer("{framework}", params[ParamFramework], "{name}", params[ParamModelName]).Replace(f.modelName)
	nameLit, err := mlflow.Literal(name)
	if err != nil {
		return false, err
	}
	runLit, err := mlflow.Literal(mlflowID)
	if err != nil {
		return false, err
	}
	have, err := f.client.SearchModelVersions(ctx, "name = "+nameLit+" and run_id = "+runLit)
	if err != nil {
		return false, fmt.Errorf("searching the versions of model %q: %w", name, err)
	}
	if len(have) > 0 {
		return false, nil
	}
	if err := f.client.CreateRegisteredModel(ctx, name, "Trained by the vision platform ("+params[ParamModel]+").",
		[]mlflow.Tag{{Key: ParamFramework, Value: params[ParamFramework]}, {Key: ParamModelName, Value: params[ParamModelName]}}); err != nil && !errors.Is(err, mlflow.ErrAlreadyExists) {
		return false, fmt.Errorf("registering model %q: %w", name, err)
	}
	tags := []mlflow.Tag{{Key: TagWeights, Value: uri}}
	if sha != "" {
		tags = append(tags, mlflow.Tag{Key: TagWeightsSHA256, Value: sha})
	}
	for _, k := range []string{TagRunID, TagJobID, TagDataset, TagDatasetDigest, TagImage, TagExecutor} {
		if v, ok := r.Tag(k); ok {
			tags = append(tags, mlflow.Tag{Key: k, Value: v})
		}
	}
	mv, err := f.client.CreateModelVersion(ctx, mlflow.CreateModelVersionRequest{
		Name: name, Source: source, RunID: mlflowID, Tags: tags,
		Description: "Run " + d.RunID + " of job " + d.Job + ".",
	})
	if err != nil {
		return false, fmt.Errorf("creating a version of model %q: %w", name, err)
	}
	if err := f.client.SetTag(ctx, mlflowID, TagModelVersion, mv.Name+"/"+mv.Version); err != nil {
		return false, fmt.Errorf("tagging the run with its model version: %w", err)
	}
	f.log.Info().Str("run", d.RunID).Str("model", mv.Name).Str("version", mv.Version).Str("source", source).Msg("registered the run's model")
	return true, nil
}

// weights is the registered model's weights: the one file under weights/
// (its name, URI and sha256), or the weights/ folder when there are
// several (its name "weights/" and URI, no sha256).
func weights(arts []events.Artifact) (name, uri, sha256 string) {
	var ws []events.Artifact
	for _, a := range arts {
		if strings.HasPrefix(path.Clean(a.Name), "weights/") {
			ws = append(ws, a)
		}
	}
	switch len(ws) {
	case 0:
		return "", "", ""
	case 1:
		return path.Clean(ws[0].Name), ws[0].URI, ws[0].SHA256
	}
	slices.SortFunc(ws, func(a, b events.Artifact) int { return strings.Compare(a.Name, b.Name) })
	a := ws[0]
	rest := strings.TrimPrefix(path.Clean(a.Name), "weights/")
	if !strings.HasSuffix(a.URI, "/"+rest) {
		return path.Clean(a.Name), a.URI, a.SHA256
	}
	return "weights/", strings.TrimSuffix(a.URI, rest), ""
}
