package dataset

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps object storage clients out of the package: it
// works on io/fs, so that the functions, the agent and the CLI each give
// it their own view of the data.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/minio/", "github.com/aws/", "k8s.io/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("dataset links %s", dep)
			}
		}
	}
}
