package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Lines writes each event as one line of structured JSON, for a process
// that has no sink (its output is the record). Concurrent sends do not
// interleave.
type Lines struct {
	mu sync.Mutex
	w  io.Writer
}

var _ Interface = (*Lines)(nil)

// NewLines writes events to w.
func NewLines(w io.Writer) *Lines { return &Lines{w: w} }

// Send writes e as one JSON line.
func (l *Lines) Send(_ context.Context, e event.Event) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("validating event: %w", err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding event: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing event: %w", err)
	}
	return nil
}
