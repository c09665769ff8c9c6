package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/api"
)

// readBody reads a request body up to the limit, answering the error
// itself.
func (f *Function) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > f.limits.MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, api.CodeTooLarge, fmt.Sprintf("a body is at most %d bytes", f.limits.MaxBody))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, f.limits.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, api.CodeTooLarge, fmt.Sprintf("a body is at most %d bytes", f.limits.MaxBody))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "reading the body: "+err.Error())
		return nil, false
	}
	return body, true
}

// postEvents takes CloudEvents from other systems (binary, structured or
// batch mode) and forwards them to the broker. Every event is checked
// first and none is forwarded if one is refused: the CloudEvents spec for
// any type, the vocabulary for the platform's types (events.Validate),
// and the catalog for job.requested.
func (f *Function) postEvents(w http.ResponseWriter, r *http.Request) {
	body, ok := f.readBody(w, r)
	if !ok {
		return
	}
	evs, probs := parseEvents(r.Header, body)
	if len(probs) > 0 {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "not CloudEvents the broker can take, nothing was forwarded: "+joinReasons(probs), probs...)
		return
	}
	batch := len(evs) > 1 || strings.HasPrefix(r.Header.Get("Content-Type"), batchMediaType)
	for i, e := range evs {
		prefix := ""
		if batch {
			prefix = fmt.Sprintf("[%d].", i)
		}
		for _, p := range f.checkEvent(e) {
			p.Field = prefix + p.Field
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		// CloudEvents, but refused by the vocabulary or the catalog.
		writeError(w, http.StatusUnprocessableEntity, api.CodeInvalid, "refused, nothing was forwarded: "+joinReasons(probs), probs...)
		return
	}
	out := api.EventsAccepted{IDs: []string{}}
	for _, e := range evs {
		if !f.emit(w, r.Context(), e) {
			return
		}
		out.Accepted++
		out.IDs = append(out.IDs, e.ID())
		if j, ok := e.Extensions()[events.ExtJobID].(string); ok {
			f.jobs.forget(j)
		}
	}
	writeJSON(w, http.StatusAccepted, out)
}

// checkEvent lists what keeps e from being forwarded.
func (f *Function) checkEvent(ev event.Event) []events.FieldError {
	var probs []events.FieldError
	if !events.Type(ev.Type()).Known() && !strings.HasPrefix(ev.Type(), events.Prefix) {
		return nil // another system's type: the CloudEvents spec only (checked when parsed)
	}
	if err := events.Validate(ev); err != nil {
		return fieldsOf(err, "", "")
	}
	if events.Type(ev.Type()) == events.JobRequested {
		var j events.JobRequestedData
		if err := events.DecodeInto(ev, &j); err == nil {
			for _, p := range f.catalog.CheckJob(j) {
				p.Field = "data." + p.Field
				probs = append(probs, p)
			}
		}
	}
	return probs
}

// delivery takes the events the broker delivers (the gateway's triggers)
// and hands each to the streams following its job. Nothing is stored or
// forwarded: a delivery reaches live followers only, so an event posted
// here by anyone else cannot start, stop or record anything.
func (f *Function) delivery(w http.ResponseWriter, r *http.Request) {
	body, ok := f.readBody(w, r)
	if !ok {
		f.m.deliveries.WithLabelValues("too_large").Inc()
		return
	}
	evs, probs := parseEvents(r.Header, body)
	if len(probs) > 0 {
		f.m.deliveries.WithLabelValues("invalid").Inc()
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "not a CloudEvent: "+joinReasons(probs), probs...)
		return
	}
	for _, e := range evs {
		if !events.Type(e.Type()).Known() {
			f.m.deliveries.WithLabelValues("ignored").Inc()
			continue
		}
		p, err := events.Decode(e)
		if err != nil {
			// Not the gateway's to refuse (the run-recorder does): it
			// reaches no follower.
			f.m.deliveries.WithLabelValues("invalid").Inc()
			f.log.Debug().Err(err).Str("id", e.ID()).Str("type", e.Type()).Msg("an invalid event delivered; not fanned out")
			continue
		}
		job := p.JobID()
		if job == "" {
			f.m.deliveries.WithLabelValues("ignored").Inc()
			continue
		}
		f.jobs.forget(job)
		_, over := f.hub.publish(job, e)
		if over > 0 {
			f.m.dropped.Add(float64(over))
		}
		f.m.deliveries.WithLabelValues("delivered").Inc()
	}
	w.WriteHeader(http.StatusAccepted)
}
