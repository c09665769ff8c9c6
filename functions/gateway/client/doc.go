// Package client is the Go client of the gateway's API: models, jobs and
// their live event streams, cancels and outputs, and resumable dataset
// uploads through presigned URLs. vp's commands are thin wrappers of it.
package client
