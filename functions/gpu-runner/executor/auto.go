package executor

import (
	"context"
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ServiceAccountToken is where Kubernetes mounts a pod's token.
const ServiceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// InClusterKubernetes is the kubernetes executor of the pod it runs in:
// the pod's service account, its namespace.
func InClusterKubernetes() (*KubernetesExecutor, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes executor: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes executor: %w", err)
	}
	ns, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return nil, fmt.Errorf("kubernetes executor: reading the pod's namespace: %w", err)
	}
	return &KubernetesExecutor{Client: client, Namespace: strings.TrimSpace(string(ns))}, nil
}

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
func Choose(ctx context.Context, mode string, docker *DockerExecutor, process func() (*ProcessExecutor, error), kube func() (*KubernetesExecutor, error)) (Executor, string, error) {
	switch mode {
	case "", "auto":
		if InCluster() {
			k, err := kube()
			return k, "in a cluster (service account token mounted)", err
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
		k, err := kube()
		return k, "asked for", err
	}
	return nil, "", fmt.Errorf("unknown executor %q (auto, process, docker, kubernetes)", mode)
}
