// Package infra renders the platform's Knative and Kubernetes manifests
// from the functions' func.yaml: a Knative Service per function, the
// Broker and one Trigger per subscription, the gpu-runner's RBAC, the GPU
// Job template, the MinIO webhook Job and the kustomize base and overlays
// (dev, gpu) that `kubectl apply -k` takes.
package infra
