package dockerapi

import (
	"errors"
	"fmt"
	"net/http"
)

var (
	// ErrNotFound matches an *Error of status 404: no such container,
	// image or network.
	ErrNotFound = errors.New("not found")
	// ErrConflict matches an *Error of status 409: a name in use, a
	// container that is not running (kill).
	ErrConflict = errors.New("conflict")
	// ErrUnsupportedHost is returned by New for an address it cannot dial
	// (ssh://, npipe://, ...).
	ErrUnsupportedHost = errors.New("unsupported Docker host")
	// ErrOldEngine is returned when the engine speaks no API version this
	// client speaks.
	ErrOldEngine = errors.New("the Docker Engine's API is too old")
	// ErrPull is returned when a pull's progress stream reports an error.
	ErrPull = errors.New("pull failed")
)

// Error is an answer of the engine other than success: the request, the
// status and the engine's message. errors.Is matches it against
// ErrNotFound and ErrConflict by its status.
type Error struct {
	Method, Path string
	StatusCode   int
	Message      string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("docker engine answered %d %s to %s %s", e.StatusCode, http.StatusText(e.StatusCode), e.Method, e.Path)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is reports whether target is the sentinel of e's status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	}
	return false
}
