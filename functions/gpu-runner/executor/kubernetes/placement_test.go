package kubernetes

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// TestPlacement: the node selector and tolerations from the environment
// reach the run's pod.
func TestPlacement(t *testing.T) {
	env := map[string]string{
		"VP_JOB_NODE_SELECTOR": `{"nvidia.com/gpu.present": "true"}`,
		"VP_JOB_TOLERATIONS":   `[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]`,
	}
	k := &Executor{Namespace: "vp"}
	if err := k.placeFromEnv(func(n string) string { return env[n] }); err != nil {
		t.Fatal(err)
	}
	job, _, err := k.Manifests(fixedRun(t))
	if err != nil {
		t.Fatal(err)
	}
	pod := job.Spec.Template.Spec
	if diff := cmp.Diff(map[string]string{"nvidia.com/gpu.present": "true"}, pod.NodeSelector); diff != "" {
		t.Errorf("node selector (-want +got):\n%s", diff)
	}
	want := []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	if diff := cmp.Diff(want, pod.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}
	for name, bad := range map[string]string{
		"VP_JOB_NODE_SELECTOR": `{"a": 1}`,
		"VP_JOB_TOLERATIONS":   `[{"key": "x", "opertor": "Exists"}]`,
	} {
		err := (&Executor{}).placeFromEnv(func(n string) string {
			if n == name {
				return bad
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("placeFromEnv with %s=%s = %v, want an error naming it", name, bad, err)
		}
	}
}
