package deadletter

import "errors"

// ErrNotStarted is Handle's failure before Start has configured the store.
var ErrNotStarted = errors.New("dead-letter not started")
