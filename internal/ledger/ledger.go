package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
)

// DefaultBucket holds the ledger unless configured otherwise.
const DefaultBucket = "platform"

// Object keys of the ledger, relative to its bucket.

// JobPrefix is where a job's record lives.
func JobPrefix(jobID string) string { return "jobs/" + jobID + "/" }

// JobStatusKey is a job's folded status.
func JobStatusKey(jobID string) string { return JobPrefix(jobID) + "status.json" }

// JobEventKey is one event of a job, by id.
func JobEventKey(jobID, eventID string) string {
	return JobPrefix(jobID) + "events/" + safe(eventID) + ".json"
}

// DatasetStatusKey is a dataset version's status, by bucket and prefix.
func DatasetStatusKey(bucket, prefix string) string {
	return "datasets/" + bucket + "/" + strings.TrimSuffix(prefix, "/") + "/status.json"
}

// ModelKey is one trained model of the index.
func ModelKey(m events.ModelRef, runID string) string {
	return "models/" + m.Framework + "/" + m.Name + "/" + safe(runID) + ".json"
}

// safe keeps an id usable as one path segment.
func safe(id string) string {
	return strings.NewReplacer("/", "_", "\\", "_", "..", "__").Replace(id)
}

// maxObject bounds what the ledger reads back of one of its objects.
const maxObject = 8 << 20

// Ledger reads and writes the record in one bucket of a store.
type Ledger struct {
	store  objstore.Store
	bucket string
	mu     sync.Mutex
	locks  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// New is the ledger in bucket of store.
func New(store objstore.Store, bucket string) *Ledger {
	if bucket == "" {
		bucket = DefaultBucket
	}
	return &Ledger{store: store, bucket: bucket, locks: map[string]*keyLock{}}
}

// Bucket is the ledger's bucket.
func (l *Ledger) Bucket() string { return l.bucket }

func (l *Ledger) uri(key string) objstore.URI { return objstore.URI{Bucket: l.bucket, Key: key} }

// lock serialises the read-modify-write of one status object within this
// process (the run-recorder runs as one instance per ledger).
func (l *Ledger) lock(key string) func() {
	l.mu.Lock()
	k := l.locks[key]
	if k == nil {
		k = &keyLock{}
		l.locks[key] = k
	}
	k.refs++
	l.mu.Unlock()
	k.mu.Lock()
	return func() {
		k.mu.Unlock()
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.locks, key)
		}
		l.mu.Unlock()
	}
}

// Record keeps e in the ledger: in its job's events (once per id) and
// folded into the job's status; a dataset event (or a job.requested) also
// into its dataset's status; a succeeded run into the model index. Events
// outside the vocabulary are ignored. Record is idempotent: the same event
// twice, or events out of order, give the same record.
func (l *Ledger) Record(ctx context.Context, e event.Event) error {
	if !events.Type(e.Type()).Known() {
		return nil
	}
	p, err := events.Decode(e)
	if err != nil {
		return fmt.Errorf("decoding %s %s: %w", e.Type(), e.ID(), err)
	}
	if bucket, prefix, ok := datasetPrefix(p); ok {
		if err := l.recordDataset(ctx, bucket, prefix, e, p); err != nil {
			return err
		}
	}
	job := p.JobID()
	if job == "" {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", e.ID(), err)
	}
	if _, err := l.store.Put(ctx, l.uri(JobEventKey(job, e.ID())), bytes.NewReader(b), int64(len(b)), objstore.WithContentType("application/cloudevents+json")); err != nil {
		return fmt.Errorf("storing event %s: %w", e.ID(), err)
	}
	unlock := l.lock(JobStatusKey(job))
	defer unlock()
	var s JobStatus
	if _, err := l.getJSON(ctx, JobStatusKey(job), &s); err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return err
	}
	if err := s.Apply(e); err != nil {
		return err
	}
	if err := l.putJSON(ctx, JobStatusKey(job), s); err != nil {
		return err
	}
	if s.State == StateSucceeded && s.Model != nil && s.Dataset != nil && s.RunID != "" {
		rec := ModelRecord{
			Model: *s.Model, JobID: s.JobID, RunID: s.RunID, Dataset: *s.Dataset, Image: s.Image,
			Hyperparameters: *s.Hyperparameters, Metrics: s.Metrics, Artifacts: s.Artifacts, Finished: s.Updated,
		}
		if err := l.putJSON(ctx, ModelKey(rec.Model, rec.RunID), rec); err != nil {
			return err
		}
	}
	return nil
}

func (l *Ledger) recordDataset(ctx context.Context, bucket, prefix string, e event.Event, p events.Payload) error {
	key := DatasetStatusKey(bucket, prefix)
	unlock := l.lock(key)
	defer unlock()
	var s DatasetStatus
	if _, err := l.getJSON(ctx, key, &s); err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return err
	}
	s.Bucket, s.Prefix = bucket, prefix
	s.Apply(e, p)
	return l.putJSON(ctx, key, s)
}

// Job is a job's status (ErrNotFound wrapped when there is none).
func (l *Ledger) Job(ctx context.Context, jobID string) (JobStatus, error) {
	var s JobStatus
	_, err := l.getJSON(ctx, JobStatusKey(jobID), &s)
	return s, err
}

// HasJob reports whether the ledger knows the job.
func (l *Ledger) HasJob(ctx context.Context, jobID string) (bool, error) {
	_, err := l.store.Stat(ctx, l.uri(JobStatusKey(jobID)))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, objstore.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("looking up job %s: %w", jobID, err)
}

// Events are a job's events, by time then id.
func (l *Ledger) Events(ctx context.Context, jobID string) ([]event.Event, error) {
	var out []event.Event
	for info, err := range l.store.List(ctx, l.uri(JobPrefix(jobID)+"events/")) {
		if err != nil {
			return nil, fmt.Errorf("listing the events of %s: %w", jobID, err)
		}
		var e event.Event
		if _, err := l.getJSON(ctx, info.URI.Key, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time().Equal(out[j].Time()) {
			return out[i].Time().Before(out[j].Time())
		}
		return out[i].ID() < out[j].ID()
	})
	return out, nil
}

// Jobs lists the ids of every job in the ledger, in key order.
func (l *Ledger) Jobs(ctx context.Context) ([]string, error) {
	var out []string
	for info, err := range l.store.List(ctx, l.uri("jobs/")) {
		if err != nil {
			return nil, fmt.Errorf("listing jobs: %w", err)
		}
		if strings.HasSuffix(info.URI.Key, "/status.json") {
			out = append(out, path.Base(path.Dir(info.URI.Key)))
		}
	}
	return out, nil
}

// Dataset is a dataset version's status.
func (l *Ledger) Dataset(ctx context.Context, bucket, prefix string) (DatasetStatus, error) {
	var s DatasetStatus
	_, err := l.getJSON(ctx, DatasetStatusKey(bucket, prefix), &s)
	return s, err
}

// Datasets lists every dataset status.
func (l *Ledger) Datasets(ctx context.Context) ([]DatasetStatus, error) {
	var out []DatasetStatus
	for info, err := range l.store.List(ctx, l.uri("datasets/")) {
		if err != nil {
			return nil, fmt.Errorf("listing datasets: %w", err)
		}
		if !strings.HasSuffix(info.URI.Key, "/status.json") {
			continue
		}
		var s DatasetStatus
		if _, err := l.getJSON(ctx, info.URI.Key, &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Models lists the trained models of the index (of one framework/name
// when m is set), in key order.
func (l *Ledger) Models(ctx context.Context, m *events.ModelRef) ([]ModelRecord, error) {
	prefix := "models/"
	if m != nil {
		prefix += m.Framework + "/" + m.Name + "/"
	}
	var out []ModelRecord
	for info, err := range l.store.List(ctx, l.uri(prefix)) {
		if err != nil {
			return nil, fmt.Errorf("listing models: %w", err)
		}
		var r ModelRecord
		if _, err := l.getJSON(ctx, info.URI.Key, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (l *Ledger) getJSON(ctx context.Context, key string, v any) (objstore.Info, error) {
	rc, info, err := l.store.Get(ctx, l.uri(key), objstore.WithMaxSize(maxObject))
	if err != nil {
		return info, fmt.Errorf("reading %s: %w", l.uri(key), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return info, fmt.Errorf("reading %s: %w", l.uri(key), err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return info, fmt.Errorf("decoding %s: %w", l.uri(key), err)
	}
	return info, nil
}

func (l *Ledger) putJSON(ctx context.Context, key string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	if _, err := l.store.Put(ctx, l.uri(key), bytes.NewReader(b), int64(len(b)), objstore.WithContentType("application/json")); err != nil {
		return fmt.Errorf("writing %s: %w", l.uri(key), err)
	}
	return nil
}
