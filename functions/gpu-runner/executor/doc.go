// Package executor launches training runs (the run agent reading its
// run.started event) as a process on this host or a container on the
// local Docker Engine, and chooses an executor for where it runs; the
// Kubernetes executor lives in the kubernetes package below, so that only a
// binary that runs runs on Kubernetes links client-go.
package executor
