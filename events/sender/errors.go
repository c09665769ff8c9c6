package sender

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoSink is returned by FromEnv when K_SINK is not set.
var ErrNoSink = errors.New("K_SINK is not set")

// Error is a failed delivery: the sink refused the event, or gave no answer
// until the attempts or the time ran out, or the context ended. Callers get
// it with errors.As to read the last status and body.
type Error struct {
	URL string
	// Status is the last HTTP status the sink answered; 0 when the last
	// attempt got no answer (Err says why).
	Status int
	// Body is the start of the last answer's body (at most the reply limit).
	Body string
	// Attempts is how many requests were made.
	Attempts int
	// Err is the last transport error, or the context's error when the
	// context ended the delivery; nil for a plain refusal.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sending to %s", e.URL)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": answered %d", e.Status)
		if body := strings.TrimSpace(e.Body); body != "" {
			fmt.Fprintf(&b, " (%s)", body)
		}
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
