package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/internal/ledger"
)

// The event stream of a job (GET /jobs/{id}/events) is Server-Sent Events:
// first the job's events from the ledger, then its events live as the
// broker delivers them to the gateway (a subscription of its own, fanned
// out in memory: each event costs the gateway one delivery whatever the
// number of followers, where polling the ledger would cost the store a
// listing per follower and poll). Each SSE id is the event's time and id:
// a client that comes back with Last-Event-ID gets the ledger's events
// after it, then the live ones. The stream ends with an "end" event once
// the job is over (run.finished, image.failed, or cancelled before a run
// started), or when it is older than the stream age limit (the client
// resumes), or when the client reads too slowly (likewise).

// cursorOf is the SSE id of e: its time and id, so that a resume is placed
// in the ledger's order even when the id itself is not in the ledger yet.
func cursorOf(e event.Event) string {
	return e.Time().UTC().Format(time.RFC3339Nano) + "/" + e.ID()
}

func parseCursor(s string) (time.Time, string, bool) {
	ts, id, ok := strings.Cut(s, "/")
	if !ok {
		return time.Time{}, "", false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	return t, id, err == nil
}

// after reports whether e comes after (t, id) in the ledger's order.
func after(e event.Event, t time.Time, id string) bool {
	if !e.Time().Equal(t) {
		return e.Time().After(t)
	}
	return e.ID() > id
}

// ends reports whether e is the last event of its job.
func ends(e event.Event, started bool) bool {
	switch events.Type(e.Type()) {
	case events.RunFinished, events.ImageFailed:
		return true
	case events.JobCancelled:
		return !started
	}
	return false
}

// recentJobs remembers the jobs the gateway asked for, so that a client
// may follow one before the ledger records it.
type recentJobs struct {
	mu    sync.Mutex
	order []string
	set   map[string]bool
}

const recentJobsKept = 4096

func (r *recentJobs) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set == nil {
		r.set = map[string]bool{}
	}
	if r.set[id] {
		return
	}
	r.set[id] = true
	r.order = append(r.order, id)
	if len(r.order) > recentJobsKept {
		delete(r.set, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *recentJobs) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set[id]
}

func (f *Function) streamJob(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	if !jobIDRE.MatchString(id) {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("%q is not a job id (job-<20 hex>)", id))
		return
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("lastEventId")
	}
	// An id this stream did not give (or none) resumes from the start:
	// the client gets events it may have seen, never fewer.
	lastT, lastID, resume := parseCursor(last)
	fl, recent, err := f.hub.subscribe(id)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, api.CodeTooMany, fmt.Sprintf("the gateway follows %d streams already; try again later", f.limits.MaxStreams))
		return
	}
	defer f.hub.unsubscribe(fl)
	// Subscribed first, then the history: an event delivered in between
	// is in one or the other (or both: sent once).
	history, err := f.ledger.Events(ctx, id)
	if err != nil {
		f.storeFailed(w, "reading the events of "+id, err)
		return
	}
	history = merge(history, recent)
	if len(history) == 0 && !f.recent.has(id) {
		if has, err := f.ledger.HasJob(ctx, id); err != nil {
			f.storeFailed(w, "reading the ledger", err)
			return
		} else if !has {
			writeError(w, http.StatusNotFound, api.CodeNotFound, "no job "+id+" in the ledger")
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	f.m.streams.Inc()
	defer f.m.streams.Dec()
	s := &sse{w: w, rc: http.NewResponseController(w), idle: 2*f.limits.Heartbeat + 10*time.Second}
	if err := s.raw("retry: 2000\n\n"); err != nil {
		return
	}
	sent := map[string]bool{}
	started := false
	for _, e := range history {
		sent[e.ID()] = true
		if t := events.Type(e.Type()); t == events.RunStarted || t == events.RunProgress {
			started = true
		}
		if resume && !after(e, lastT, lastID) {
			if ends(e, started) {
				s.end(id)
				return
			}
			continue
		}
		if s.event(e) != nil {
			return
		}
		if ends(e, started) {
			s.end(id)
			return
		}
	}
	if st, err := f.ledger.Job(ctx, id); err == nil && ledger.Terminal(st.State) && st.State != ledger.StateCancelled {
		s.end(id)
		return
	}
	beat := time.NewTicker(f.limits.Heartbeat)
	defer beat.Stop()
	age := time.NewTimer(f.limits.StreamMaxAge)
	defer age.Stop()
	live := false
	for {
		select {
		case e := <-fl.ch:
			live = true
			if sent[e.ID()] {
				continue
			}
			sent[e.ID()] = true
			if t := events.Type(e.Type()); t == events.RunStarted || t == events.RunProgress {
				started = true
			}
			if s.event(e) != nil {
				return
			}
			if ends(e, started) {
				s.end(id)
				return
			}
		case <-beat.C:
			if s.raw(": keep-alive\n\n") != nil {
				return
			}
			// A stream that heard nothing live for a while looks at the
			// ledger: a delivery lost (the gateway restarted, another
			// instance got it) is sent from there.
			if !live {
				if done := f.catchUp(ctx, id, s, sent, &started); done {
					return
				}
			}
			live = false
		case <-fl.overflow:
			return
		case <-age.C:
			return
		case <-ctx.Done():
			return
		case <-f.stopped:
			return
		}
	}
}

// sse writes one stream, pushing each write's deadline on (the server's
// write timeout would end the stream otherwise).
type sse struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (s *sse) raw(text string) error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.idle)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := fmt.Fprint(s.w, text); err != nil {
		return err
	}
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// event writes e as one SSE event: its cursor, its short type, and the
// whole CloudEvent in JSON (structured mode) as data.
func (s *sse) event(e event.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.raw("id: " + cursorOf(e) + "\nevent: " + events.Type(e.Type()).Short() + "\ndata: " + string(b) + "\n\n")
}

// end tells the client the job is over and it need not come back.
func (s *sse) end(job string) {
	_ = s.raw(`event: end` + "\ndata: {\"jobId\":\"" + job + "\"}\n\n")
}

// catchUp sends the job's events the ledger has and the stream has not
// sent, and ends the stream once the job is over; it reports whether the
// stream ended. It reads the job's events only when its status (shared by
// the job's streams, read at most once a second) shows an event not sent.
func (f *Function) catchUp(ctx context.Context, id string, s *sse, sent map[string]bool, started *bool) bool {
	st, err := f.jobs.status(ctx, id)
	if err != nil {
		return false
	}
	missing := false
	for _, e := range st.Timeline {
		if !sent[e.ID] {
			missing = true
			break
		}
	}
	if !missing {
		if ledger.Terminal(st.State) {
			s.end(id)
			return true
		}
		return false
	}
	evs, err := f.ledger.Events(ctx, id)
	if err != nil {
		return false
	}
	for _, e := range evs {
		if sent[e.ID()] {
			continue
		}
		sent[e.ID()] = true
		if t := events.Type(e.Type()); t == events.RunStarted || t == events.RunProgress {
			*started = true
		}
		if s.event(e) != nil {
			return true
		}
		if ends(e, *started) {
			s.end(id)
			return true
		}
	}
	return false
}

// merge adds to the ledger's events of a job the recent ones it does not
// have yet, in the ledger's order (time, then id).
func merge(history, recent []event.Event) []event.Event {
	if len(recent) == 0 {
		return history
	}
	have := make(map[string]bool, len(history))
	for _, e := range history {
		have[e.ID()] = true
	}
	for _, e := range recent {
		if !have[e.ID()] {
			history = append(history, e)
			have[e.ID()] = true
		}
	}
	sort.SliceStable(history, func(i, j int) bool {
		if !history[i].Time().Equal(history[j].Time()) {
			return history[i].Time().Before(history[j].Time())
		}
		return history[i].ID() < history[j].ID()
	})
	return history
}
