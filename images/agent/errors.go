package agent

import (
	"errors"
	"fmt"
)

// ErrBadRequest marks a run request the agent cannot act on.
var ErrBadRequest = errors.New("bad run request")

// FieldError names a setting of the agent that is wrong (Field is the
// setting, such as "LogFormat"); vp-agent maps it to its flag.
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason)
}
