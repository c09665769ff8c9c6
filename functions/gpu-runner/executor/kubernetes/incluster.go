package kubernetes

import (
	"fmt"
	"os"
	"strings"

	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vision-platform/vp/functions/gpu-runner/executor"
)

// NamespaceFile is where Kubernetes mounts a pod's namespace.
const NamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// InCluster is the kubernetes executor of the pod it runs in: the pod's
// service account, its namespace.
func InCluster() (*Executor, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes executor: %w", err)
	}
	client, err := clientset.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes executor: making the client: %w", err)
	}
	ns, err := os.ReadFile(NamespaceFile)
	if err != nil {
		return nil, fmt.Errorf("kubernetes executor: reading the pod's namespace: %w", err)
	}
	return &Executor{Client: client, Namespace: strings.TrimSpace(string(ns))}, nil
}

// InClusterOption lets executor.Choose pick the kubernetes executor of the
// pod it runs in (made only when chosen): the one import that links
// client-go into a binary.
func InClusterOption() executor.Option {
	return executor.WithKubernetes(func() (executor.Executor, error) {
		k, err := InCluster()
		if err != nil {
			return nil, err // not a nil *Executor in an interface
		}
		return k, nil
	})
}
