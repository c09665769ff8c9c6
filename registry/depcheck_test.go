package registry

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the catalog light: functions and the HTTP API
// import it, so it must not pull in the image builder, the broker's storage
// or the Kubernetes and Knative API types.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, banned := range []string{
		"github.com/vision-platform/vp/images/", "github.com/google/go-containerregistry",
		"github.com/nats-io/", "github.com/minio/", "k8s.io/", "knative.dev/",
	} {
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("registry imports %s", dep)
			}
		}
	}
}
