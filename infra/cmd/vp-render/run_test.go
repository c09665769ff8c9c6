package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/vision-platform/vp/infra"
)

func render(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"--root", "../../.."}, args...), &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestRenderWriteAndCheck: vp-render writes the tree, --check finds it up
// to date, then names a file changed by hand and a stale one.
func TestRenderWriteAndCheck(t *testing.T) {
	dir := t.TempDir()
	if out, err := render(t, "--out", dir); err != nil || !strings.Contains(out, "rendered") {
		t.Fatalf("vp-render = %v\n%s", err, out)
	}
	if out, err := render(t, "--out", dir, "--check"); err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("vp-render --check of what it wrote = %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "base", "gpu-runner.yaml"), []byte("# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "base", "old-function.yaml"), []byte("# gone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := render(t, "--out", dir, "--check")
	if !errors.Is(err, ErrDiffers) || !strings.Contains(out, "base/gpu-runner.yaml: differs") || !strings.Contains(out, "base/old-function.yaml: no longer rendered") {
		t.Errorf("vp-render --check after edits = %v\n%s\nwant ErrDiffers naming both files", err, out)
	}
	if out, err := render(t, "--out", dir); err != nil {
		t.Fatalf("vp-render = %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "base", "old-function.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale manifest is still there after a render: %v", err)
	}
}

// TestRenderFlags: the images file and the flags reach the manifests; bad
// values are errors naming the flag.
func TestRenderFlags(t *testing.T) {
	dir := t.TempDir()
	ref := "127.0.0.1:5000/vp/gpu-runner@sha256:" + strings.Repeat("b", 64)
	images := filepath.Join(dir, "images.json")
	if err := os.WriteFile(images, []byte(`{"gpu-runner": "`+ref+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "infra")
	if o, err := render(t, "--out", out, "--images", images, "--namespace", "ml", "--gpu-node-selector", "pool=a100", "--gpu-toleration", "gpu=true:NoExecute"); err != nil {
		t.Fatalf("vp-render = %v\n%s", err, o)
	}
	b, err := os.ReadFile(filepath.Join(out, "base", "gpu-runner.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "image: "+ref) || !strings.Contains(string(b), "namespace: ml") {
		t.Errorf("gpu-runner.yaml lacks the image %s or the namespace ml:\n%s", ref, b)
	}
	cfg, err := os.ReadFile(filepath.Join(out, "overlays", "gpu", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `{"pool":"a100"}`) || !strings.Contains(string(cfg), `"key":"gpu","operator":"Equal","value":"true","effect":"NoExecute"`) {
		t.Errorf("the gpu overlay's config lacks the placement:\n%s", cfg)
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--namespace", "Not_A_Label"}, "--namespace"},
		{[]string{"--backoff-delay", "200ms"}, "--backoff-delay"},
		{[]string{"--gpu-toleration", "=x"}, "--gpu-toleration"},
		{[]string{"--gpu-toleration", "gpu:Sometimes"}, "--gpu-toleration"},
		{[]string{"--gpu-node-selector", "novalue"}, "--gpu-node-selector"},
		{[]string{"--images", filepath.Join(dir, "missing.json")}, "--images"},
		{[]string{"--placeholder-digest", "sha256:1"}, "--placeholder-digest"},
		{[]string{"stray"}, "unexpected arguments"},
	}
	for _, c := range bad {
		o, err := render(t, append([]string{"--out", filepath.Join(dir, "bad")}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("vp-render %v = %v (%s), want an error naming %s", c.args, err, o, c.want)
		}
	}
}

func TestPlacement(t *testing.T) {
	p, err := placement([]string{"a=b", "c="}, []string{"gpu", "gpu=yes", "spot:NoSchedule"})
	if err != nil {
		t.Fatal(err)
	}
	want := infra.Placement{
		NodeSelector: map[string]string{"a": "b", "c": ""},
		Tolerations: []corev1.Toleration{
			{Key: "gpu", Operator: corev1.TolerationOpExists},
			{Key: "gpu", Operator: corev1.TolerationOpEqual, Value: "yes"},
			{Key: "spot", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		},
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("placement (-want +got):\n%s", diff)
	}
}
