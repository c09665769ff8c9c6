// Package events is the platform's event vocabulary: the CloudEvent types,
// their payloads and JSON Schemas, constructors that set ids, subjects and
// trace context, and validation that names every bad field.
package events
