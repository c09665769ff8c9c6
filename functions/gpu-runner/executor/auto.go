package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vision-platform/vp/events"
)

// ServiceAccountToken is where Kubernetes mounts a pod's token.
const ServiceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// tokenFile is ServiceAccountToken; tests point it elsewhere.
var tokenFile = ServiceAccountToken

// InCluster reports whether this process runs in a Kubernetes pod.
func InCluster() bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return false
	}
	_, err := os.Stat(tokenFile)
	return err == nil
}

// Option adjusts Choose.
type Option func(*choice) error

type choice struct {
	kubernetes func() (Executor, error)
}

// WithKubernetes gives Choose the kubernetes executor, made by newKube only
// when chosen (kubernetes.InClusterOption passes the executor of the pod
// it runs in). Without it Choose never picks kubernetes: this package does
// not link client-go, only a binary that passes this option does.
func WithKubernetes(newKube func() (Executor, error)) Option {
	return func(c *choice) error {
		if newKube == nil {
			return errors.New("WithKubernetes: nil constructor")
		}
		c.kubernetes = newKube
		return nil
	}
}

// Choose picks the executor for mode: "process", "docker", "kubernetes",
// or "auto" (the original plan's TRAINING_EXECUTION_MODE=auto): kubernetes
// inside a cluster when the binary has it (WithKubernetes), docker where a
// Docker Engine answers, else process. It returns the choice and why, for
// the log and run.started.
func Choose(ctx context.Context, mode string, docker *DockerExecutor, process func() (*ProcessExecutor, error), opts ...Option) (Executor, string, error) {
	var c choice
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, "", err
		}
	}
	newProcess := func(why string) (Executor, string, error) {
		p, err := process()
		if err != nil {
			return nil, why, fmt.Errorf("making the process executor: %w", err)
		}
		return p, why, nil
	}
	newKube := func(why string) (Executor, string, error) {
		if c.kubernetes == nil {
			return nil, why, ErrNoKubernetes
		}
		k, err := c.kubernetes()
		if err != nil {
			return nil, why, fmt.Errorf("making the kubernetes executor: %w", err)
		}
		return k, why, nil
	}
	switch mode {
	case "", "auto":
		inCluster := InCluster()
		if inCluster && c.kubernetes != nil {
			return newKube("in a cluster (service account token mounted)")
		}
		if docker != nil && docker.Available(ctx) {
			return docker, "a Docker Engine answers", nil
		}
		if inCluster {
			return newProcess("in a cluster, but this binary has no kubernetes executor, and no Docker Engine answers")
		}
		return newProcess("no cluster and no Docker Engine")
	case Process:
		return newProcess("asked for")
	case Docker:
		if docker == nil || !docker.Available(ctx) {
			return nil, "asked for", fmt.Errorf("docker executor: %w", ErrNoEngine)
		}
		return docker, "asked for", nil
	case Kubernetes:
		return newKube("asked for")
	}
	return nil, "", fmt.Errorf("%w %q (auto, %s)", ErrUnknownExecutor, mode, strings.Join(events.Executors, ", "))
}
