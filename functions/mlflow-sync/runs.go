package mlflowsync

import (
	"container/list"
	"sync"
)

// metricKey is one point of a metric's history: a metric is logged once
// per step.
type metricKey struct {
	key  string
	step int64
}

// runState is what the function knows of one platform run's MLflow run.
// Its mutex serialises the events of the run; a field set from MLflow is
// only trusted while loaded is true (an error drops it, and the next event
// reads MLflow again).
type runState struct {
	mu sync.Mutex

	loaded       bool   // found (or created) in MLflow by this process
	mlflowID     string // "" while MLflow has no run for it
	experimentID string
	status       string             // the MLflow run's status
	history      map[metricKey]bool // nil until read from MLflow

	// the cache's bookkeeping, guarded by runCache.mu
	id    string
	users int
	idle  *list.Element
}

// reset forgets what was read from MLflow.
func (s *runState) reset() {
	s.loaded, s.mlflowID, s.experimentID, s.status, s.history = false, "", "", "", nil
}

// runCache holds the state of the runs being synced and of the most
// recently synced idle ones (up to max); older idle runs are read from
// MLflow again when an event of theirs comes.
type runCache struct {
	mu   sync.Mutex
	runs map[string]*runState
	lru  *list.List // idle runs, most recent first
	max  int
}

func newRunCache(max int) *runCache {
	return &runCache{runs: map[string]*runState{}, lru: list.New(), max: max}
}

// acquire returns the run's state, locked for the caller.
func (c *runCache) acquire(id string) *runState {
	c.mu.Lock()
	s := c.runs[id]
	if s == nil {
		s = &runState{id: id}
		c.runs[id] = s
	}
	s.users++
	if s.idle != nil {
		c.lru.Remove(s.idle)
		s.idle = nil
	}
	c.mu.Unlock()
	s.mu.Lock()
	return s
}

// release unlocks s; once no event uses it, it joins the idle runs.
func (c *runCache) release(s *runState) {
	s.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	s.users--
	if s.users > 0 {
		return
	}
	s.idle = c.lru.PushFront(s)
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*runState)
		old.idle = nil
		delete(c.runs, old.id)
	}
}
