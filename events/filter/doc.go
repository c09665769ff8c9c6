// Package filter is the trigger-filter engine: Knative's filter.attributes
// (exact match, "" matches any value) and the filters dialect (exact, prefix,
// suffix, all, any, not, cesql), validated and compiled once, then matched
// against events. The local broker and the Knative manifests share it.
package filter
