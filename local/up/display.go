package up

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/local/broker"
)

// displayKeep is how many of the latest events the display answers GET with.
const displayKeep = 200

// EventDisplay logs every CloudEvent it receives, one line each, as
// Knative's event-display does, and answers GET with the latest ones
// (up to 200, oldest first) as a JSON array of structured-mode events.
func EventDisplay(log zerolog.Logger) http.Handler {
	var mu sync.Mutex
	var recent []event.Event
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			mu.Lock()
			out := append([]event.Event{}, recent...)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(out)
			return
		case http.MethodPost:
		default:
			w.Header().Set("Allow", "GET, POST")
			broker.WriteError(w, http.StatusMethodNotAllowed, "method not allowed",
				events.FieldError{Field: "method", Reason: "use POST to send an event, GET to list the latest"})
			return
		}
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			broker.WriteError(w, http.StatusBadRequest, "not a CloudEvent", events.FieldError{Field: "body", Reason: err.Error()})
			return
		}
		l := log.Info().Str("id", e.ID()).Str("type", e.Type()).Str("source", e.Source())
		if s := e.Subject(); s != "" {
			l = l.Str("subject", s)
		}
		for k, v := range e.Extensions() {
			if k == "jobid" || k == "traceparent" || strings.HasPrefix(k, "knativeerror") {
				l = l.Interface(k, v)
			}
		}
		l.RawJSON("data", jsonOrString(e.Data())).Msg("event")
		mu.Lock()
		if len(recent) == displayKeep {
			recent = append(recent[:0], recent[1:]...)
		}
		recent = append(recent, *e)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
}

func jsonOrString(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	for _, c := range b {
		if c == ' ' || c == '\n' || c == '\t' || c == '\r' {
			continue
		}
		if c == '{' || c == '[' || c == '"' {
			return b
		}
		break
	}
	q := fmt.Sprintf("%q", b)
	return []byte(q)
}
