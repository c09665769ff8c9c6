// Package fn holds what the platform's functions share: their settings,
// read from the map knative.dev/func-go hands a function's Start (the
// environment and the cfg file) or that vp up builds, the object store and
// the event sender those settings name, the answers a handler gives the
// broker (a refusal that is final, a failure worth retrying), and serving
// a function on a listener as func-go does.
package fn
