// Package kubernetes runs training runs as Kubernetes Jobs with client-go;
// it is apart from package executor so that only a binary that runs runs on
// Kubernetes links client-go.
package kubernetes
