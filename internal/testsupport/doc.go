// Package testsupport is what the integration tests share: the real MinIO
// server as a process of its own, an event sink, polling and HTTP waits,
// free ports, the run agent built from this tree, and small generated data
// sets.
package testsupport
