package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
)

var (
	jobIDRE   = regexp.MustCompile(`^job-[a-f0-9]{20}$`)
	modelRE   = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._-]*)$`)
	digestRE  = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	idemKeyRE = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)
)

// States a job listing filters on.
var jobStates = []string{ledger.StateRequested, ledger.StateQueued, ledger.StateRunning, ledger.StateCancelling,
	ledger.StateSucceeded, ledger.StateFailed, ledger.StateCancelled}

// idempotencyRecord is kept in the ledger's bucket for each
// Idempotency-Key: the job it started and the request it came with.
type idempotencyRecord struct {
	JobID   string    `json:"jobId"`
	Request string    `json:"request"` // sha256 of the canonical request
	Created time.Time `json:"created"`
}

func idempotencyKey(token, key string) string {
	sum := sha256.Sum256([]byte(token + "\x00" + key))
	return "gateway/idempotency/" + hex.EncodeToString(sum[:]) + ".json"
}

// createJob checks a job against the ledger and the catalog and asks the
// broker for it (job.requested). A retry starts nothing twice: the same
// Idempotency-Key answers the job it started, and a job the ledger holds
// (the same dataset, model and hyperparameters: the same id) is answered
// without an event; the broker drops a job.requested it stored already.
func (f *Function) createJob(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req api.JobRequest
	if !f.readJSON(w, r, &req, false) {
		return
	}
	idem := r.Header.Get("Idempotency-Key")
	if idem != "" && !idemKeyRE.MatchString(idem) {
		fieldError(w, http.StatusBadRequest, api.CodeBadRequest, "Idempotency-Key", "1 to 255 visible ASCII characters")
		return
	}
	tok := caller(ctx)
	job, probs, err := f.buildJob(ctx, req, tok)
	if err != nil {
		f.storeFailed(w, "reading the ledger", err)
		return
	}
	if len(probs) > 0 {
		writeError(w, http.StatusUnprocessableEntity, api.CodeInvalid, "the job cannot be run: "+joinReasons(probs), probs...)
		return
	}
	canon, _ := json.Marshal(job)
	reqSum := sha256.Sum256(canon)
	var idemKey string
	if idem != "" {
		idemKey = idempotencyKey(tok.Name, idem)
		var rec idempotencyRecord
		switch err := f.getJSON(ctx, idemKey, &rec); {
		case err == nil:
			if rec.Request != hex.EncodeToString(reqSum[:]) {
				fieldError(w, http.StatusUnprocessableEntity, api.CodeInvalid, "Idempotency-Key", "was used for another job (%s); use a new key for a new request", rec.JobID)
				return
			}
			f.acceptedJob(w, r, job, false)
			return
		case !errors.Is(err, objstore.ErrNotFound):
			f.storeFailed(w, "reading the idempotency key", err)
			return
		}
	}
	has, err := f.ledger.HasJob(ctx, job.ID)
	if err != nil {
		f.storeFailed(w, "reading the ledger", err)
		return
	}
	if !has {
		e, err := events.New(ctx, Source, job)
		if err != nil {
			probs := fieldsOf(err, "data.", "")
			writeError(w, http.StatusUnprocessableEntity, api.CodeInvalid, "the job is not valid: "+joinReasons(probs), probs...)
			return
		}
		if !f.emit(w, ctx, e) {
			return
		}
		f.recent.add(job.ID)
	}
	if idemKey != "" {
		rec := idempotencyRecord{JobID: job.ID, Request: hex.EncodeToString(reqSum[:]), Created: time.Now().UTC()}
		if err := f.putJSON(ctx, idemKey, rec); err != nil {
			// The job is asked for; a retry with the key finds it by its id.
			f.log.Warn().Err(err).Str("job", job.ID).Msg("keeping the idempotency key")
		}
	}
	f.acceptedJob(w, r, job, !has)
}

func (f *Function) acceptedJob(w http.ResponseWriter, r *http.Request, job events.JobRequestedData, created bool) {
	state := ledger.StateRequested
	if s, err := f.ledger.Job(r.Context(), job.ID); err == nil {
		state = s.State
	}
	w.Header().Set("Location", api.Prefix+"/jobs/"+job.ID)
	writeJSON(w, http.StatusAccepted, api.JobAccepted{JobID: job.ID, State: state, Created: created, Job: job})
}

// emit posts e to the broker, answering the error itself: a refusal (the
// broker's 4xx, naming fields) is the client's 422; no answer is 502.
func (f *Function) emit(w http.ResponseWriter, ctx context.Context, e event.Event) bool {
	if err := f.send.Send(ctx, e); err != nil {
		var se *sender.Error
		if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && se.Status != http.StatusTooManyRequests {
			var body struct {
				Error  string              `json:"error"`
				Fields []events.FieldError `json:"fields"`
			}
			_ = json.Unmarshal([]byte(se.Body), &body)
			msg := "the broker refused the event"
			if body.Error != "" {
				msg += ": " + body.Error
			}
			writeError(w, http.StatusUnprocessableEntity, api.CodeInvalid, msg, body.Fields...)
			return false
		}
		f.log.Error().Err(err).Str("id", e.ID()).Str("type", e.Type()).Msg("posting to the broker")
		writeError(w, http.StatusBadGateway, api.CodeUnavailable, "the broker did not take the event; try again: "+err.Error())
		return false
	}
	f.m.emitted.WithLabelValues(events.Type(e.Type()).Short()).Inc()
	return true
}

// buildJob makes the job.requested payload of req: the model and the
// dataset resolved, the catalog's defaults filled, its id set, checked
// against the catalog. Problems name the request's fields.
func (f *Function) buildJob(ctx context.Context, req api.JobRequest, tok Token) (events.JobRequestedData, []events.FieldError, error) {
	var probs []events.FieldError
	add := func(field, format string, args ...any) {
		probs = append(probs, events.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	job := events.JobRequestedData{Hyperparameters: req.Hyperparameters, Resources: req.Resources, RequestedBy: req.RequestedBy}
	if job.RequestedBy == "" {
		job.RequestedBy = "gateway:" + tok.Name
	}
	m := modelRE.FindStringSubmatch(req.Model)
	if m == nil {
		add("model", "%q is not framework/name (e.g. torchvision/resnet18)", req.Model)
	} else {
		job.Model = events.ModelRef{Framework: m[1], Name: m[2]}
	}
	ds, dprobs, err := f.resolveDataset(ctx, req.Dataset)
	if err != nil {
		return job, nil, err
	}
	probs = append(probs, dprobs...)
	job.Dataset = ds
	if len(probs) > 0 {
		return job, probs, nil
	}
	if mod, err := f.catalog.Lookup(job.Model.Framework, job.Model.Name); err == nil {
		job.Hyperparameters = mod.WithDefaults(job.Hyperparameters)
	}
	job.ID = events.JobID(job.Dataset.Digest, job.Model, job.Hyperparameters)
	for _, p := range f.catalog.CheckJob(job) {
		if strings.HasPrefix(p.Field, "model.") {
			p.Field = "model"
		}
		if p.Field == "dataset.task" || p.Field == "dataset.format" {
			p.Field = "dataset"
		}
		probs = append(probs, p)
	}
	if len(probs) == 0 {
		if _, err := events.New(ctx, Source, job); err != nil {
			probs = fieldsOf(err, "data.", "")
		}
	}
	return job, probs, nil
}

// resolveDataset finds the dataset version a job names: by name (the
// latest uploaded version of that name), by bucket and prefix (which must
// be uploaded; a digest given must match), or given whole when the ledger
// does not know it.
func (f *Function) resolveDataset(ctx context.Context, sel api.DatasetSelector) (events.DatasetRef, []events.FieldError, error) {
	var ref events.DatasetRef
	one := func(field, format string, args ...any) (events.DatasetRef, []events.FieldError, error) {
		return ref, []events.FieldError{{Field: field, Reason: fmt.Sprintf(format, args...)}}, nil
	}
	if sel.Digest != "" && !digestRE.MatchString(sel.Digest) {
		return one("dataset.digest", "%q is not sha256:<64 hex>", sel.Digest)
	}
	switch {
	case sel.Name != "":
		all, err := f.ledger.Datasets(ctx)
		if err != nil {
			return ref, nil, err
		}
		var best *ledger.DatasetStatus
		for i, d := range all {
			if d.Name != sel.Name || d.State != "uploaded" || d.Digest == "" ||
				(sel.Bucket != "" && d.Bucket != sel.Bucket) || (sel.Prefix != "" && d.Prefix != sel.Prefix) ||
				(sel.Digest != "" && d.Digest != sel.Digest) {
				continue
			}
			if best == nil || d.Uploaded.After(best.Uploaded) {
				best = &all[i]
			}
		}
		if best == nil {
			return one("dataset.name", "no uploaded dataset named %q in the ledger", sel.Name)
		}
		return events.DatasetRef{Bucket: best.Bucket, Prefix: best.Prefix, Digest: best.Digest, Task: best.Task, Format: best.Format}, nil, nil
	case sel.Bucket != "" && sel.Prefix != "":
		prefix := sel.Prefix
		if !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		d, err := f.ledger.Dataset(ctx, sel.Bucket, prefix)
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			// Not in the ledger: the caller vouches for it, whole.
			var probs []events.FieldError
			for _, m := range []struct{ field, v string }{{"dataset.digest", sel.Digest}, {"dataset.task", sel.Task}, {"dataset.format", sel.Format}} {
				if m.v == "" {
					probs = append(probs, events.FieldError{Field: m.field, Reason: "required for a dataset the ledger does not hold"})
				}
			}
			if len(probs) > 0 {
				return ref, probs, nil
			}
			return events.DatasetRef{Bucket: sel.Bucket, Prefix: prefix, Digest: sel.Digest, Task: sel.Task, Format: sel.Format}, nil, nil
		case err != nil:
			return ref, nil, err
		case d.State != "uploaded" || d.Digest == "":
			return one("dataset", "the dataset at %s/%s is %s, not uploaded", sel.Bucket, prefix, orNone(d.State))
		case sel.Digest != "" && sel.Digest != d.Digest:
			return one("dataset.digest", "the dataset at %s/%s has digest %s", sel.Bucket, prefix, d.Digest)
		}
		return events.DatasetRef{Bucket: d.Bucket, Prefix: d.Prefix, Digest: d.Digest, Task: d.Task, Format: d.Format}, nil, nil
	}
	return one("dataset", "name a dataset: its name, or its bucket and prefix")
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// fieldsOf is the field errors of a validation error, with a prefix
// replaced ("data." → "").
func fieldsOf(err error, from, to string) []events.FieldError {
	var ve *events.ValidationError
	if !errors.As(err, &ve) {
		return []events.FieldError{{Field: "body", Reason: err.Error()}}
	}
	out := make([]events.FieldError, len(ve.Fields))
	for i, fe := range ve.Fields {
		if rest, ok := strings.CutPrefix(fe.Field, from); ok {
			fe.Field = to + rest
		}
		out[i] = fe
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Field < out[b].Field })
	return out
}

func joinReasons(fs []events.FieldError) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.Error()
	}
	return strings.Join(parts, "; ")
}

// storeFailed answers a store that did not answer.
func (f *Function) storeFailed(w http.ResponseWriter, what string, err error) {
	f.log.Error().Err(err).Msg(what)
	writeError(w, http.StatusServiceUnavailable, api.CodeUnavailable, what+": the store did not answer; try again")
}

// summary is a job's line in a listing.
func summary(s ledger.JobStatus) api.JobSummary {
	js := api.JobSummary{JobID: s.JobID, State: s.State, Reason: s.Reason, Dataset: s.Dataset, RunID: s.RunID,
		RequestedBy: s.RequestedBy, Metrics: s.Metrics, Created: s.Created, Updated: s.Updated}
	if s.Model != nil {
		js.Model = s.Model.String()
	}
	return js
}

// A cursor is the position after a job of a listing (newest first): its
// creation time in Unix nanoseconds and its id. Clients treat it as
// opaque; its pattern (cursorRE, in the OpenAPI document too) is one any
// value of which decodes.
var cursorRE = regexp.MustCompile(`^(1?[0-9]{1,18})\.(job-[a-f0-9]{20})$`)

func encodeCursor(s ledger.JobStatus) string {
	return strconv.FormatInt(s.Created.UnixNano(), 10) + "." + s.JobID
}

func decodeCursor(c string) (time.Time, string, bool) {
	m := cursorRE.FindStringSubmatch(c)
	if m == nil {
		return time.Time{}, "", false
	}
	ns, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(0, ns).UTC(), m[2], true
}

// newer orders jobs newest first, then by id.
func newer(a, b ledger.JobStatus) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	return a.JobID < b.JobID
}

// JobFilter selects jobs of a listing; empty fields match every job.
type JobFilter struct {
	State, Model, Dataset string
}

func (q JobFilter) match(s ledger.JobStatus) bool {
	if q.State != "" && s.State != q.State {
		return false
	}
	if q.Model != "" && (s.Model == nil || s.Model.String() != q.Model) {
		return false
	}
	if q.Dataset != "" {
		d := s.Dataset
		if d == nil {
			return false
		}
		prefix := strings.TrimSuffix(d.Prefix, "/")
		name, _, _ := strings.Cut(prefix, "/")
		v := strings.TrimSuffix(q.Dataset, "/")
		if v != d.Digest && v != prefix && v != d.Bucket+"/"+prefix && v != name {
			return false
		}
	}
	return true
}

func (f *Function) listJobs(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	for k := range v {
		if !slices.Contains([]string{"state", "model", "dataset", "limit", "cursor"}, k) {
			fieldError(w, http.StatusBadRequest, api.CodeBadRequest, k, "unknown parameter (state, model, dataset, limit and cursor)")
			return
		}
		if len(v[k]) > 1 {
			fieldError(w, http.StatusBadRequest, api.CodeBadRequest, k, "given %d times; give it once", len(v[k]))
			return
		}
	}
	q := JobFilter{State: v.Get("state"), Model: v.Get("model"), Dataset: v.Get("dataset")}
	if v.Has("state") && !slices.Contains(jobStates, q.State) {
		fieldError(w, http.StatusBadRequest, api.CodeBadRequest, "state", "%q is not one of %s", q.State, strings.Join(jobStates, ", "))
		return
	}
	limit := f.limits.DefaultPage
	if v.Has("limit") {
		s := v.Get("limit")
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > f.limits.MaxPage {
			fieldError(w, http.StatusBadRequest, api.CodeBadRequest, "limit", "%q is not a number from 1 to %d", s, f.limits.MaxPage)
			return
		}
		limit = n
	}
	var after *ledger.JobStatus
	if v.Has("cursor") {
		t, id, ok := decodeCursor(v.Get("cursor"))
		if !ok {
			fieldError(w, http.StatusBadRequest, api.CodeBadRequest, "cursor", "not a cursor this gateway gave")
			return
		}
		after = &ledger.JobStatus{Created: t, JobID: id}
	}
	page, next, err := f.JobPage(r.Context(), q, after, limit)
	if err != nil {
		f.storeFailed(w, "listing jobs", err)
		return
	}
	writeJSON(w, http.StatusOK, api.JobList{Jobs: page, NextCursor: next})
}

// JobPage is up to limit jobs q selects, newest first, after the job
// after (nil: from the newest), and the cursor of the next page ("" at
// the end).
func (f *Function) JobPage(ctx context.Context, q JobFilter, after *ledger.JobStatus, limit int) ([]api.JobSummary, string, error) {
	all, err := f.jobs.all(ctx)
	if err != nil {
		return nil, "", err
	}
	sort.Slice(all, func(i, j int) bool { return newer(all[i], all[j]) })
	page := []api.JobSummary{}
	next := ""
	for _, s := range all {
		if after != nil && !newer(*after, s) {
			continue
		}
		if !q.match(s) {
			continue
		}
		if len(page) == limit {
			next = encodeCursor(ledger.JobStatus{Created: page[len(page)-1].Created, JobID: page[len(page)-1].JobID})
			break
		}
		page = append(page, summary(s))
	}
	return page, next, nil
}

// job answers 404 for an id that is not a job id or not in the ledger.
func (f *Function) job(w http.ResponseWriter, r *http.Request) (ledger.JobStatus, bool) {
	id := r.PathValue("id")
	if !jobIDRE.MatchString(id) {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("%q is not a job id (job-<20 hex>)", id))
		return ledger.JobStatus{}, false
	}
	s, err := f.jobs.status(r.Context(), id)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		writeError(w, http.StatusNotFound, api.CodeNotFound, "no job "+id+" in the ledger")
		return s, false
	case err != nil:
		f.storeFailed(w, "reading job "+id, err)
		return s, false
	}
	return s, true
}

func (f *Function) getJob(w http.ResponseWriter, r *http.Request) {
	s, ok := f.job(w, r)
	if !ok {
		return
	}
	if s.Timeline == nil {
		s.Timeline = []ledger.Entry{}
	}
	writeJSON(w, http.StatusOK, s)
}

// Progress is every run.progress of a job, by step then epoch.
func (f *Function) Progress(ctx context.Context, jobID string) ([]api.ProgressPoint, error) {
	evs, err := f.ledger.Events(ctx, jobID)
	if err != nil {
		return nil, err
	}
	points := []api.ProgressPoint{}
	for _, e := range evs {
		if events.Type(e.Type()) != events.RunProgress {
			continue
		}
		var d events.RunProgressData
		if err := json.Unmarshal(e.Data(), &d); err != nil {
			continue
		}
		points = append(points, api.ProgressPoint{Epoch: d.Epoch, Step: d.Step, Metrics: d.Metrics, Time: d.Time.UTC()})
	}
	sort.SliceStable(points, func(i, j int) bool {
		if points[i].Step != points[j].Step {
			return points[i].Step < points[j].Step
		}
		return points[i].Epoch < points[j].Epoch
	})
	return points, nil
}

func (f *Function) jobProgress(w http.ResponseWriter, r *http.Request) {
	s, ok := f.job(w, r)
	if !ok {
		return
	}
	points, err := f.Progress(r.Context(), s.JobID)
	if err != nil {
		f.storeFailed(w, "reading the events of "+s.JobID, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Progress{JobID: s.JobID, Points: points})
}

func (f *Function) cancelJob(w http.ResponseWriter, r *http.Request) {
	s, ok := f.job(w, r)
	if !ok {
		return
	}
	var req api.CancelRequest
	if !f.readJSON(w, r, &req, true) {
		return
	}
	if ledger.Terminal(s.State) {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("job %s is %s already", s.JobID, s.State))
		return
	}
	d := events.JobCancelledData{Job: s.JobID, Reason: req.Reason, RequestedBy: "gateway:" + caller(r.Context()).Name}
	if d.Reason == "" {
		d.Reason = "cancelled through the gateway"
	}
	e, err := events.New(r.Context(), Source, d)
	if err != nil {
		probs := fieldsOf(err, "data.", "")
		writeError(w, http.StatusUnprocessableEntity, api.CodeInvalid, joinReasons(probs), probs...)
		return
	}
	if !f.emit(w, r.Context(), e) {
		return
	}
	f.jobs.forget(s.JobID)
	state := ledger.StateCancelling
	if !s.Started {
		state = ledger.StateCancelled
	}
	writeJSON(w, http.StatusAccepted, api.CancelAccepted{JobID: s.JobID, EventID: e.ID(), State: state})
}

func (f *Function) jobArtifacts(w http.ResponseWriter, r *http.Request) {
	s, ok := f.job(w, r)
	if !ok {
		return
	}
	out := api.Artifacts{JobID: s.JobID, RunID: s.RunID, Expires: time.Now().Add(f.limits.PresignExpiry).UTC().Truncate(time.Second), Artifacts: []api.Artifact{}}
	for _, a := range s.Artifacts {
		u, err := f.presignGet(r.Context(), a.URI)
		if err != nil {
			f.log.Warn().Err(err).Str("uri", a.URI).Msg("presigning an artifact")
			continue
		}
		out.Artifacts = append(out.Artifacts, api.Artifact{Artifact: a, URL: u})
	}
	if s.Log != "" {
		if u, err := f.presignGet(r.Context(), s.Log); err == nil {
			name := s.Log[strings.LastIndex(s.Log, "/")+1:]
			out.Log = &api.Artifact{Artifact: events.Artifact{Name: name, URI: s.Log}, URL: u}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Function) presignGet(ctx context.Context, uri string) (string, error) {
	u, err := objstore.ParseURI(uri)
	if err != nil {
		return "", err
	}
	p, err := f.presigner.PresignGet(ctx, u, f.limits.PresignExpiry)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// getJSON and putJSON read and write the gateway's own records in the
// ledger's bucket.
func (f *Function) getJSON(ctx context.Context, key string, v any) error {
	rc, _, err := f.store.Get(ctx, objstore.URI{Bucket: f.ledgerB, Key: key}, objstore.WithMaxSize(1<<20))
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (f *Function) putJSON(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = f.store.Put(ctx, objstore.URI{Bucket: f.ledgerB, Key: key}, bytes.NewReader(b), int64(len(b)), objstore.WithContentType("application/json"))
	return err
}
