package functions

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/functions/funcyaml"
	"github.com/vision-platform/vp/images/imagespec"
)

// TestSpecs: every function (functions/*/func.yaml) has an image spec on
// the function base that builds its main package for amd64 and arm64, and
// every spec but the base is a function's.
func TestSpecs(t *testing.T) {
	specs, err := imagespec.LoadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	base, ok := specs["function-base"]
	if !ok {
		t.Fatal("no function-base spec")
	}
	platforms := []string{"linux/amd64", "linux/arm64"}
	if !base.Base.Scratch || base.User != "65532:65532" || !cmp.Equal(base.Platforms, platforms) {
		t.Errorf("function-base: scratch %v, user %q, platforms %v; want scratch, 65532:65532, %v", base.Base.Scratch, base.User, base.Platforms, platforms)
	}
	passwd, err := os.ReadFile(filepath.Join("base", "etc", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(passwd), "\nnonroot:x:65532:65532:") {
		t.Errorf("base/etc/passwd lacks the nonroot user 65532:\n%s", passwd)
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "functions", "*", "func.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no functions/*/func.yaml")
	}
	names := map[string]bool{"function-base": true}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f, err := funcyaml.Parse(file, b)
		if err != nil {
			t.Fatal(err)
		}
		names[f.Name] = true
		s, ok := specs[f.Name]
		if !ok {
			t.Errorf("function %s has no image spec %s.yaml", f.Name, f.Name)
			continue
		}
		pkg := "./functions/" + f.Name + "/cmd/" + f.Name
		if s.Base.Spec != "function-base" || !cmp.Equal(s.Platforms, platforms) || !cmp.Equal(s.Entrypoint, []string{"/ko-app/" + f.Name}) ||
			len(s.Layers) != 1 || s.Layers[0].Go == nil || s.Layers[0].Go.Package != pkg || s.Layers[0].Go.Dest != "/ko-app/"+f.Name {
			t.Errorf("%s.yaml: want the go package %s at /ko-app/%s, the entrypoint, on function-base for %v", f.Name, pkg, f.Name, platforms)
			continue
		}
		main, err := os.ReadFile(filepath.Join(s.Resolve(s.Layers[0].Go.Dir), filepath.FromSlash(pkg), "main.go"))
		if err != nil || !strings.Contains(string(main), "package main") {
			t.Errorf("%s: %s is not a main package: %v", f.Name, pkg, err)
		}
	}
	for n := range specs {
		if !names[n] {
			t.Errorf("spec %s is neither the base nor a function's", n)
		}
	}
}
