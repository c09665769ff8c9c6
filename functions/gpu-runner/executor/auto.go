package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// ServiceAccountToken is where Kubernetes mounts a pod's token.
const ServiceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// ErrKubernetesUnavailable is returned where the kubernetes executor would
// be chosen: it is not part of this build yet.
var ErrKubernetesUnavailable = errors.New("the kubernetes executor is not available in this build")

// InCluster reports whether this process runs in a Kubernetes pod.
func InCluster() bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return false
	}
	_, err := os.Stat(ServiceAccountToken)
	return err == nil
}

// Choose picks the executor for mode: "process", "docker", "kubernetes",
// or "auto" (the original plan's TRAINING_EXECUTION_MODE=auto): kubernetes
// inside a cluster, docker where a Docker Engine answers, else process. It
// returns the choice and why, for the log and run.started.
func Choose(ctx context.Context, mode string, docker *DockerExecutor, process func() (*ProcessExecutor, error)) (Executor, string, error) {
	switch mode {
	case "", "auto":
		if InCluster() {
			return nil, "in a cluster (service account token mounted)", ErrKubernetesUnavailable
		}
		if docker != nil && docker.Available(ctx) {
			return docker, "a Docker Engine answers", nil
		}
		p, err := process()
		return p, "no cluster and no Docker Engine", err
	case Process:
		p, err := process()
		return p, "asked for", err
	case Docker:
		if docker == nil || !docker.Available(ctx) {
			return nil, "asked for", fmt.Errorf("docker executor: no Docker Engine answers")
		}
		return docker, "asked for", nil
	case Kubernetes:
		return nil, "asked for", ErrKubernetesUnavailable
	}
	return nil, "", fmt.Errorf("unknown executor %q (auto, process, docker, kubernetes)", mode)
}
