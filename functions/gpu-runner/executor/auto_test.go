package executor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
	"k8s.io/client-go/kubernetes/fake"
)

func TestChoose(t *testing.T) {
	ctx := context.Background()
	proc := func() (*ProcessExecutor, error) {
		return NewProcess(ctx, "vp-agent", t.TempDir(), func(context.Context) ([]string, error) { return nil, nil }, zerolog.Nop())
	}
	// A docker command that fails stands for a host without an engine.
	noEngine := filepath.Join(t.TempDir(), "docker")
	os.WriteFile(noEngine, []byte("#!/bin/sh\nexit 1\n"), 0o755)
	withEngine := &DockerExecutor{}
	kube := func() (*KubernetesExecutor, error) {
		return &KubernetesExecutor{Client: fake.NewSimpleClientset(), Namespace: "vp"}, nil
	}
	cases := []struct {
		mode   string
		docker *DockerExecutor
		want   string
		err    error
	}{
		{"auto", withEngine, Docker, nil},
		{"auto", &DockerExecutor{Docker: noEngine}, Process, nil},
		{"", nil, Process, nil},
		{"process", withEngine, Process, nil},
		{"docker", withEngine, Docker, nil},
		{"kubernetes", withEngine, Kubernetes, nil},
	}
	if !withEngine.Available(ctx) {
		t.Fatal("no Docker Engine answers on this machine")
	}
	for _, c := range cases {
		e, why, err := Choose(ctx, c.mode, c.docker, proc, kube)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("Choose(%q) error = %v, want %v", c.mode, err, c.err)
			}
			continue
		}
		if err != nil || e.Name() != c.want || why == "" {
			t.Errorf("Choose(%q) = %v, %q, %v; want %s", c.mode, e, why, err, c.want)
		}
	}
	if _, _, err := Choose(ctx, "docker", &DockerExecutor{Docker: noEngine}, proc, kube); err == nil {
		t.Error("Choose(docker) without an engine succeeded")
	}
	if _, _, err := Choose(ctx, "slurm", withEngine, proc, kube); err == nil {
		t.Error("Choose(slurm) succeeded")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	if InCluster() {
		t.Error("InCluster() without a token = true")
	}
	if _, err := InClusterKubernetes(); err == nil {
		t.Error("InClusterKubernetes() outside a cluster succeeded")
	}
}
