package kubernetes

import (
	"encoding/json"
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
	k := &Executor{Client: client, Namespace: strings.TrimSpace(string(ns))}
	if err := k.placeFromEnv(os.Getenv); err != nil {
		return nil, fmt.Errorf("kubernetes executor: %w", err)
	}
	return k, nil
}

// placeFromEnv reads where runs' pods go: VP_JOB_NODE_SELECTOR, a JSON
// object of node labels ({"nvidia.com/gpu.present":"true"}), and
// VP_JOB_TOLERATIONS, a JSON list of Kubernetes tolerations
// ([{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}]).
func (k *Executor) placeFromEnv(getenv func(string) string) error {
	if v := strings.TrimSpace(getenv("VP_JOB_NODE_SELECTOR")); v != "" {
		if err := strictJSON(v, &k.NodeSelector); err != nil {
			return fmt.Errorf("VP_JOB_NODE_SELECTOR: %w", err)
		}
	}
	if v := strings.TrimSpace(getenv("VP_JOB_TOLERATIONS")); v != "" {
		if err := strictJSON(v, &k.Tolerations); err != nil {
			return fmt.Errorf("VP_JOB_TOLERATIONS: %w", err)
		}
	}
	return nil
}

func strictJSON(s string, v any) error {
	d := json.NewDecoder(strings.NewReader(s))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if d.More() {
		return fmt.Errorf("%q: more than one JSON value", s)
	}
	return nil
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
