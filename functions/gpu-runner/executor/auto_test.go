package executor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/internal/testsupport"
)

// kubeStandIn stands for the kubernetes executor, which this package does
// not link: Choose only needs something named kubernetes.
type kubeStandIn struct{ Executor }

func (kubeStandIn) Name() string { return Kubernetes }

// script writes an executable shell script and returns its path.
func script(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func noGPUs(context.Context) ([]string, error) { return nil, nil }

// TestChoose covers every choice that needs no Docker Engine: a socket
// nothing listens on stands for a host without one, and a token file of
// the test's for a pod's.
func TestChoose(t *testing.T) {
	ctx := context.Background()
	proc := func() (*ProcessExecutor, error) {
		return NewProcess(ctx, "vp-agent", t.TempDir(), noGPUs, zerolog.Nop())
	}
	noEngine := &DockerExecutor{Host: nowhere(t)}
	kube := WithKubernetes(func() (Executor, error) { return kubeStandIn{}, nil })
	errNoAPI := errors.New("no API server")
	kubeFails := WithKubernetes(func() (Executor, error) { return nil, errNoAPI })
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc      string
		mode      string
		inCluster bool
		docker    *DockerExecutor
		opts      []Option
		want      string // executor name; "" when err is wanted
		why       string // part of the reason
		err       error  // wanted, by errors.Is
		errText   string // wanted, by its text
	}{
		{desc: "auto without engine", mode: "auto", docker: noEngine, opts: []Option{kube}, want: Process, why: "no cluster"},
		{desc: "empty mode is auto", mode: "", want: Process, why: "no cluster"},
		{desc: "auto in a cluster", mode: "auto", inCluster: true, docker: noEngine, opts: []Option{kube}, want: Kubernetes, why: "in a cluster"},
		{desc: "auto in a cluster, binary without kubernetes", mode: "auto", inCluster: true, docker: noEngine, want: Process, why: "no kubernetes executor"},
		{desc: "process", mode: Process, docker: noEngine, want: Process, why: "asked for"},
		{desc: "kubernetes", mode: Kubernetes, opts: []Option{kube}, want: Kubernetes, why: "asked for"},
		{desc: "kubernetes, binary without it", mode: Kubernetes, err: ErrNoKubernetes},
		{desc: "kubernetes that cannot be made", mode: Kubernetes, opts: []Option{kubeFails}, err: errNoAPI},
		{desc: "docker without engine", mode: Docker, docker: noEngine, err: ErrNoEngine},
		{desc: "docker without executor", mode: Docker, err: ErrNoEngine},
		{desc: "unknown", mode: "slurm", err: ErrUnknownExecutor},
		{desc: "nil kubernetes constructor", mode: "auto", opts: []Option{WithKubernetes(nil)}, errText: "nil constructor"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if c.inCluster {
				t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
				tokenFile = token
				t.Cleanup(func() { tokenFile = ServiceAccountToken })
			} else {
				t.Setenv("KUBERNETES_SERVICE_HOST", "")
			}
			e, why, err := Choose(ctx, c.mode, c.docker, proc, c.opts...)
			switch {
			case c.err != nil:
				if !errors.Is(err, c.err) || e != nil {
					t.Errorf("Choose(%q) = %v, %v; want no executor and %v", c.mode, e, err, c.err)
				}
				return
			case c.errText != "":
				if err == nil || !strings.Contains(err.Error(), c.errText) || e != nil {
					t.Errorf("Choose(%q) = %v, %v; want no executor and an error saying %q", c.mode, e, err, c.errText)
				}
				return
			}
			if err != nil || e.Name() != c.want || !strings.Contains(why, c.why) {
				t.Errorf("Choose(%q) = %v, %q, %v; want %s, %q", c.mode, e, why, err, c.want, c.why)
			}
		})
	}
}

func TestInCluster(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile = token
	t.Cleanup(func() { tokenFile = ServiceAccountToken })
	for _, c := range []struct {
		host  string
		token bool
		want  bool
	}{{"", true, false}, {"10.0.0.1", false, false}, {"10.0.0.1", true, true}} {
		t.Setenv("KUBERNETES_SERVICE_HOST", c.host)
		tokenFile = token
		if !c.token {
			tokenFile = token + ".absent"
		}
		if got := InCluster(); got != c.want {
			t.Errorf("InCluster() with host %q, token %v = %v, want %v", c.host, c.token, got, c.want)
		}
	}
}

// TestInt_Choose asks the host's Docker Engine: auto picks docker where one
// answers.
func TestInt_Choose(t *testing.T) {
	testsupport.Integration(t)
	ctx := context.Background()
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	withEngine, _ := realEngine(t)
	proc := func() (*ProcessExecutor, error) {
		return NewProcess(ctx, "vp-agent", t.TempDir(), noGPUs, zerolog.Nop())
	}
	for _, mode := range []string{"auto", Docker} {
		e, why, err := Choose(ctx, mode, withEngine, proc)
		if err != nil || e.Name() != Docker || why == "" {
			t.Errorf("Choose(%q) = %v, %q, %v; want docker", mode, e, why, err)
		}
	}
	if e, _, err := Choose(ctx, Process, withEngine, proc); err != nil || e.Name() != Process {
		t.Errorf("Choose(process) with an engine = %v, %v; want process", e, err)
	}
}
