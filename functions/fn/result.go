package fn

import (
	"errors"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/vision-platform/vp/events"
)

// Refuse is a handler's final no: the broker does not redeliver a 4xx other
// than 404, 408, 409 and 429 (Knative's delivery rules), so an event that
// can never be handled ends there, or in the trigger's dead-letter sink.
// The reason goes back in the answer.
func Refuse(format string, args ...any) error {
	return cehttp.NewResult(http.StatusBadRequest, format, args...)
}

// Retry is a failure that may pass: the broker redelivers on 5xx with its
// backoff. A handler returns it when a store or a peer is unreachable.
func Retry(err error) error {
	return cehttp.NewResult(http.StatusServiceUnavailable, "%v", err)
}

// Invalid refuses an event whose payload does not validate, naming the
// fields.
func Invalid(err error) error {
	var ve *events.ValidationError
	if errors.As(err, &ve) {
		return Refuse("%s", ve.Error())
	}
	return Refuse("%v", err)
}

// StatusOf is the HTTP status a handler's error answers with (200 for nil,
// 500 for an error that is not a result), for tests and logs.
func StatusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var r *cehttp.Result
	if protocol.ResultAs(err, &r) {
		return r.StatusCode
	}
	return http.StatusInternalServerError
}
