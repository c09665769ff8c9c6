// Package ctxio makes readers and writers that stop once a context is
// done, so that a long copy (a layer compressed, a wheel stored) ends at
// its next read or write after a cancel.
package ctxio
