package gpurunner_test

import (
	"os/exec"
	"strings"
	"testing"
)

// k8sDeps lists the Kubernetes packages the gpu-runner links with the
// build flags flags (go list -deps, tests excluded).
func k8sDeps(t *testing.T, flags ...string) []string {
	t.Helper()
	args := append(append([]string{"list", "-deps"}, flags...), ".")
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var found []string
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "k8s.io/") || strings.HasPrefix(dep, "sigs.k8s.io/") {
			found = append(found, dep)
		}
	}
	return found
}

// TestDependencies: vp, which runs the gpu-runner in its own process,
// links no client-go; the function's own build (func.yaml: -tags
// kubernetes) does, to launch Kubernetes Jobs.
func TestDependencies(t *testing.T) {
	if found := k8sDeps(t); len(found) > 0 {
		t.Errorf("the gpu-runner links %s", strings.Join(found, ", "))
	}
	if found := k8sDeps(t, "-tags", "kubernetes"); !strings.Contains(strings.Join(found, " "), "k8s.io/client-go/") {
		t.Errorf("the gpu-runner built with -tags kubernetes links %v, want client-go among them", found)
	}
}

// TestFuncYAMLBuildsWithKubernetes: the func.yaml build passes the tag.
func TestFuncYAMLBuildsWithKubernetes(t *testing.T) {
	f := parseFuncYAML(t)
	var envs []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	}
	b := f.Build
	for i := 0; i+1 < len(b.Content); i += 2 {
		if b.Content[i].Value == "buildEnvs" {
			if err := b.Content[i+1].Decode(&envs); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, e := range envs {
		if e.Name == "GOFLAGS" && strings.Contains(e.Value, "-tags=kubernetes") {
			return
		}
	}
	t.Errorf("func.yaml build.buildEnvs = %+v, want GOFLAGS with -tags=kubernetes", envs)
}
