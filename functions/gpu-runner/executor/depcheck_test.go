package executor

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists the packages pkg links (go list -deps, tests excluded).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// TestDependencies keeps client-go and the Kubernetes API types out of
// every binary that does not run runs on Kubernetes: they are linked only
// through the kubernetes package below.
func TestDependencies(t *testing.T) {
	banned := []string{"k8s.io/", "sigs.k8s.io/"}
	linksBanned := func(pkg string) []string {
		var found []string
		for _, dep := range deps(t, pkg) {
			for _, b := range banned {
				if strings.HasPrefix(dep, b) {
					found = append(found, dep)
				}
			}
		}
		return found
	}
	if found := linksBanned("."); len(found) > 0 {
		t.Errorf("executor links %s", strings.Join(found, ", "))
	}
	// The probe itself: the kubernetes package does link client-go.
	if found := linksBanned("./kubernetes"); !strings.Contains(strings.Join(found, " "), "k8s.io/client-go/") {
		t.Errorf("go list -deps ./kubernetes = %v, want client-go among them", found)
	}
}
