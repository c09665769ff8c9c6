package events

import (
	"maps"
	"slices"

	"github.com/cloudevents/sdk-go/v2/event"
)

// StringAttributes calls fn with the name and value of every string
// attribute of e: id, source, type, subject, dataschema, datacontenttype,
// then its string extensions by name. The broker and the gateway check
// them with it: each is carried as an HTTP header value.
func StringAttributes(e event.Event, fn func(name, value string)) {
	fn("id", e.ID())
	fn("source", e.Source())
	fn("type", e.Type())
	fn("subject", e.Subject())
	fn("dataschema", e.DataSchema())
	fn("datacontenttype", e.DataContentType())
	exts := e.Extensions()
	for _, k := range slices.Sorted(maps.Keys(exts)) {
		if s, ok := exts[k].(string); ok {
			fn(k, s)
		}
	}
}
