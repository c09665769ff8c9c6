package datasetintake

import (
	"container/list"
	"context"
	"sync"
)

// memo remembers the last max keys it was told (least recently used out
// first): the work already done, so that a burst of notifications for one
// dataset posts one event.
type memo struct {
	mu   sync.Mutex
	max  int
	ll   *list.List
	keys map[string]*list.Element
}

func newMemo(max int) *memo {
	return &memo{max: max, ll: list.New(), keys: map[string]*list.Element{}}
}

// has says whether key is remembered, and freshens it.
func (m *memo) has(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.keys[key]
	if ok {
		m.ll.MoveToFront(e)
	}
	return ok
}

// add remembers key.
func (m *memo) add(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.keys[key]; ok {
		m.ll.MoveToFront(e)
		return
	}
	m.keys[key] = m.ll.PushFront(key)
	for m.ll.Len() > m.max {
		last := m.ll.Back()
		m.ll.Remove(last)
		delete(m.keys, last.Value.(string))
	}
}

// locks serialises the work on one dataset prefix: a waiter gives up when
// its context ends.
type locks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{}
	refs int
}

func newLocks() *locks { return &locks{m: map[string]*keyLock{}} }

// lock takes key's lock, or returns ctx's error; the func releases it.
func (l *locks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	k := l.m[key]
	if k == nil {
		k = &keyLock{ch: make(chan struct{}, 1)}
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	select {
	case k.ch <- struct{}{}:
		return func() { <-k.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
