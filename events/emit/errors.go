package emit

import "fmt"

// FieldError names the field of Options that is wrong (Type, Extensions);
// a command maps it to its own flag.
type FieldError struct {
	Field  string // "Type", "Extensions"
	Value  string // the bad value, if any
	Reason string
}

func (e *FieldError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason)
	}
	return e.Field + ": " + e.Reason
}
