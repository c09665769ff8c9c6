package mlflow

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels an *APIError matches with errors.Is, by MLflow's error code.
var (
	// ErrNotFound is RESOURCE_DOES_NOT_EXIST.
	ErrNotFound = errors.New("mlflow: resource does not exist")
	// ErrAlreadyExists is RESOURCE_ALREADY_EXISTS.
	ErrAlreadyExists = errors.New("mlflow: resource already exists")
	// ErrBadTrackingURI is a tracking URI that is not an http(s) URL with a
	// host.
	ErrBadTrackingURI = errors.New("mlflow: the tracking URI must be an http or https URL with a host")
	// ErrUnquotable is a value no search filter can name.
	ErrUnquotable = errors.New("mlflow: the value cannot be quoted in a search filter")
)

// APIError is an answer of the server other than 2xx: its HTTP status and,
// when the body is MLflow's error object, its error code and message.
type APIError struct {
	Endpoint string // the API path, e.g. runs/log-batch
	Status   int
	Code     string // e.g. RESOURCE_DOES_NOT_EXIST; "" when the body was not MLflow's
	Message  string
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("mlflow %s: %d %s: %s", e.Endpoint, e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("mlflow %s: %d %s: %s", e.Endpoint, e.Status, http.StatusText(e.Status), e.Message)
}

// Is matches ErrNotFound and ErrAlreadyExists by error code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == "RESOURCE_DOES_NOT_EXIST"
	case ErrAlreadyExists:
		return e.Code == "RESOURCE_ALREADY_EXISTS"
	}
	return false
}

// Temporary reports whether the same request may succeed later: the
// server failed (5xx), was overloaded (429) or timed out (408), or the
// credentials were refused (401, 403: fixed by the operator, not by the
// request).
func (e *APIError) Temporary() bool {
	switch {
	case e.Status >= 500, e.Status == http.StatusTooManyRequests, e.Status == http.StatusRequestTimeout,
		e.Status == http.StatusUnauthorized, e.Status == http.StatusForbidden:
		return true
	}
	return false
}

// Permanent reports whether err is an answer of the server that the same
// request will get again: an *APIError that is not Temporary. Errors
// reaching the server (refused connections, timeouts) are not permanent.
func Permanent(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && !ae.Temporary()
}
