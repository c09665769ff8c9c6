package assemble

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/internal/testsupport"
)

func TestFrameworkSpecs(t *testing.T) {
	specs, err := imagespec.LoadDir(filepath.Join("..", "frameworks"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"base", "torchvision", "timm", "ultralytics", "huggingface", "paddle"} {
		s, ok := specs[name]
		if !ok {
			t.Errorf("no %s spec", name)
			continue
		}
		if name != "base" && (s.Base.Spec != "base" || s.Framework == "") {
			t.Errorf("%s: base %q framework %q", name, s.Base.Spec, s.Framework)
		}
	}
	forbids := strings.Join(specs["paddle"].Forbid, ",")
	if !strings.Contains(forbids, "torch") {
		t.Errorf("paddle forbids %q, want torch", forbids)
	}
	in, err := os.ReadFile(filepath.Join("..", "frameworks", "requirements", "paddle.in"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(in), "torch") {
		t.Error("paddle's requirements name torch")
	}
}

// TestInt_BuildBaseFramework builds the real base spec: the Debian rootfs,
// the agent and the SDK; a framework image without its lock says so.
func TestInt_BuildBaseFramework(t *testing.T) {
	testsupport.Integration(t)
	testsupport.Rootfs(t)
	specs, err := imagespec.LoadDir(filepath.Join("..", "frameworks"))
	if err != nil {
		t.Fatal(err)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenCache(filepath.Join(home, ".cache", "vision-platform", "test-images"))
	if err != nil {
		t.Fatal(err)
	}
	b := must[*Builder](t)(New(c, specs))
	r, err := b.Build(context.Background(), "base")
	if err != nil {
		t.Fatalf("Build(base) = %v", err)
	}
	fs := files(t, r.Artifact.Image())
	for _, p := range []string{"/opt/vp/bin/vp-agent", "/opt/vp/site-packages/vp_sdk/run.py", "/opt/vp/site-packages/vp_sdk/adapters/torchvision_adapter.py", "/usr/bin/python3"} {
		if _, ok := fs[p]; !ok {
			t.Errorf("base image lacks %s", p)
		}
	}
	b2 := must[*Builder](t)(New(c, specs))
	if _, err := b2.Build(context.Background(), "timm"); !errors.Is(err, ErrLockMissing) || !strings.Contains(err.Error(), "lock file locks/timm.lock is missing") {
		t.Errorf("Build(timm) without its lock = %v", err)
	}
}
