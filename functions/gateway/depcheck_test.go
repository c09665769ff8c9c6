package gateway

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the gateway, its console and its client light: the
// browser driver its tests use, the local broker and its embedded NATS, the
// image builder and the Kubernetes and Knative API types stay out of them.
func TestDependencies(t *testing.T) {
	for _, pkg := range []string{".", "./console", "./client", "./api"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, banned := range []string{
			"github.com/chromedp/", "github.com/vision-platform/vp/local/", "github.com/nats-io/",
			"github.com/vision-platform/vp/images/", "github.com/google/go-containerregistry", "k8s.io/", "knative.dev/pkg",
		} {
			for _, dep := range strings.Fields(string(out)) {
				if strings.HasPrefix(dep, banned) {
					t.Errorf("%s imports %s", pkg, dep)
				}
			}
		}
	}
}
