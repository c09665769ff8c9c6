package events

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the vocabulary light: every function imports it,
// so it must not pull in the broker's storage, the Knative API types, the
// browser driver or the image libraries.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, banned := range []string{
		"github.com/nats-io/", "github.com/valyala/fasthttp", "github.com/prometheus/",
		"knative.dev/serving", "knative.dev/eventing", "k8s.io/", "github.com/chromedp/",
		"github.com/google/go-containerregistry", "github.com/minio/",
	} {
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("events imports %s", dep)
			}
		}
	}
}
