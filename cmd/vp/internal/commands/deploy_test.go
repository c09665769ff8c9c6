package commands

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vision-platform/vp/internal/testsupport"
)

func TestFindRepository(t *testing.T) {
	root := testsupport.ModuleRoot(t)
	for _, dir := range []string{root, filepath.Join(root, "infra", "base"), filepath.Join(root, "cmd", "vp")} {
		if got, err := findRepository(dir); err != nil || got != root {
			t.Errorf("findRepository(%s) = %q, %v; want %s", dir, got, err, root)
		}
	}
	if _, err := findRepository(t.TempDir()); !errors.Is(err, ErrNoRepository) {
		t.Errorf("findRepository(a folder outside) = %v, want ErrNoRepository", err)
	}
}

// TestInt_DeployRender runs vp deploy render as a user would: it builds
// the infra module's renderer and runs it; infra/ as committed is what it
// renders (--check), and a render elsewhere writes the same files.
func TestInt_DeployRender(t *testing.T) {
	testsupport.Integration(t)
	root := testsupport.ModuleRoot(t)
	out, err := run(context.Background(), "", "deploy", "render", "--check")
	if err != nil || !strings.Contains(out, "files up to date") {
		t.Fatalf("vp deploy render --check = %v\n%s", err, out)
	}
	dir := t.TempDir()
	if out, err := run(context.Background(), "", "deploy", "render", "--out", dir); err != nil {
		t.Fatalf("vp deploy render --out %s = %v\n%s", dir, err, out)
	}
	for _, p := range []string{"base/kustomization.yaml", "base/gpu-runner.yaml", "overlays/gpu/kustomization.yaml", "templates/gpu-run-job.yaml"} {
		want, err := os.ReadFile(filepath.Join(root, "infra", p))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s rendered elsewhere differs from infra/%s: %v", p, p, err)
		}
	}
	out, err = run(context.Background(), "", "deploy", "render", "--out", dir, "--namespace", "Bad_Name")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(out, "--namespace") {
		t.Errorf("vp deploy render --namespace Bad_Name = %v\n%s\nwant exit code 1 and the renderer naming --namespace", err, out)
	}
}
