package main

import (
	"errors"
	"testing"

	"github.com/vision-platform/vp/images/agent"
)

// TestFlagError: the library's field error comes back naming the flag.
func TestFlagError(t *testing.T) {
	_, err := agent.Logger(nil, "xml")
	if got, want := flagError(err).Error(), `--log-format "xml": not json or console`; got != want {
		t.Errorf("flagError(Logger(xml)) = %q, want %q", got, want)
	}
	other := errors.New("something else")
	if got := flagError(other); got != other {
		t.Errorf("flagError(%v) = %v, want it unchanged", other, got)
	}
}
