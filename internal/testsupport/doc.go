// Package testsupport is what the integration tests share: the real MinIO
// server and an MLflow tracking server as processes of their own, an event
// sink, polling and HTTP waits, free ports, the run agent built from this
// tree, and small generated data sets.
package testsupport
