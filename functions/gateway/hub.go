package gateway

import (
	"errors"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
)

// followerBuffer is how many events a follower may lag behind before its
// stream is ended (its client resumes with Last-Event-ID, from the
// ledger).
const followerBuffer = 256

var errTooManyStreams = errors.New("too many event streams")

// Recent events are kept for the jobs delivered last: a stream that
// starts between an event's delivery and its record in the ledger gets
// it from there.
const (
	keptJobs   = 1024 // jobs whose recent events are kept
	keptEvents = 64   // events kept per job
)

// hub fans the events the broker delivers out to the streams following
// their jobs. Publishing never blocks: a follower whose buffer is full is
// told to end (overflow) instead.
type hub struct {
	max  int
	mu   sync.RWMutex
	subs map[string]map[*follower]struct{}
	n    int

	rmu    sync.Mutex
	recent map[string][]event.Event
	order  []string // jobs of recent, oldest first
}

type follower struct {
	job      string
	ch       chan event.Event
	overflow chan struct{}
	once     sync.Once
}

func newHub(max int) *hub {
	return &hub{max: max, subs: map[string]map[*follower]struct{}{}, recent: map[string][]event.Event{}}
}

// subscribe follows job's events, or errTooManyStreams past the limit; it
// returns the job's recent events too (none delivered in between is
// missed: publish keeps an event before it hands it out, under the same
// lock subscribe holds).
func (h *hub) subscribe(job string) (*follower, []event.Event, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n >= h.max {
		return nil, nil, errTooManyStreams
	}
	fl := &follower{job: job, ch: make(chan event.Event, followerBuffer), overflow: make(chan struct{})}
	set := h.subs[job]
	if set == nil {
		set = map[*follower]struct{}{}
		h.subs[job] = set
	}
	set[fl] = struct{}{}
	h.n++
	h.rmu.Lock()
	recent := append([]event.Event(nil), h.recent[job]...)
	h.rmu.Unlock()
	return fl, recent, nil
}

// keep remembers e among job's recent events.
func (h *hub) keep(job string, e event.Event) {
	h.rmu.Lock()
	defer h.rmu.Unlock()
	evs, ok := h.recent[job]
	if !ok {
		h.order = append(h.order, job)
		if len(h.order) > keptJobs {
			delete(h.recent, h.order[0])
			h.order = h.order[1:]
		}
	}
	for _, have := range evs {
		if have.ID() == e.ID() {
			return
		}
	}
	evs = append(evs, e)
	if len(evs) > keptEvents {
		evs = evs[len(evs)-keptEvents:]
	}
	h.recent[job] = evs
}

func (h *hub) unsubscribe(fl *follower) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[fl.job]
	if _, ok := set[fl]; !ok {
		return
	}
	delete(set, fl)
	if len(set) == 0 {
		delete(h.subs, fl.job)
	}
	h.n--
}

// publish hands e to every follower of job; it returns how many got it
// and how many overflowed.
func (h *hub) publish(job string, e event.Event) (sent, overflowed int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	h.keep(job, e)
	for fl := range h.subs[job] {
		select {
		case fl.ch <- e:
			sent++
		default:
			fl.once.Do(func() { close(fl.overflow) })
			overflowed++
		}
	}
	return sent, overflowed
}
