package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/vision-platform/vp/internal/testsupport"
)

// TestModuleLeavesKnativeAPIsOut: no package of the root module, tests
// included, imports Knative Serving's or Eventing's API types. They weigh
// tens of megabytes; the nested infra module (infra/go.mod), which renders
// and validates the manifests, is the one place that links them.
func TestModuleLeavesKnativeAPIsOut(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-test", "./...")
	cmd.Dir = testsupport.ModuleRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps -test ./...: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps -test ./... listed %d packages: not the whole module", len(deps))
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "knative.dev/serving") || strings.HasPrefix(dep, "knative.dev/eventing") || strings.HasPrefix(dep, "github.com/vision-platform/vp/infra") {
			t.Errorf("the root module imports %s", dep)
		}
	}
}
