package executor

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/vision-platform/vp/events"
)

var update = flag.Bool("update", false, "rewrite the golden manifests")

// fixedRun is a run whose event has fixed attributes, so its manifests can
// be compared with a golden file.
func fixedRun(t *testing.T) Run {
	t.Helper()
	r := runOf(t, "run-0001", 2)
	r.Event.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r.Event.SetExtension(events.ExtTraceparent, "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")
	r.Image = "registry.example/vp/timm@sha256:" + strings.Repeat("e", 64)
	r.CPU, r.Memory = "8", "32Gi"
	r.Env = []string{"K_SINK=http://broker-ingress.knative-eventing.svc/vp/default"}
	return r
}

// A Kubernetes API server cannot run here: these tests use client-go's fake
// clientset and golden manifests.
func TestKubernetesManifestsGolden(t *testing.T) {
	k := &KubernetesExecutor{Namespace: "vp", ServiceAccount: "vp-runner", Env: []corev1.EnvVar{{Name: "VP_S3_ENDPOINT", Value: "minio.vp.svc:9000"}}}
	job, secret, err := k.Manifests(fixedRun(t))
	if err != nil {
		t.Fatal(err)
	}
	jb, _ := yaml.Marshal(job)
	sb, _ := yaml.Marshal(secret)
	got := string(jb) + "---\n" + string(sb)
	path := filepath.Join("testdata", "job_want.yaml")
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run Golden -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("manifests (-want +got):\n%s", diff)
	}
}

func TestKubernetesLaunchIdempotentAndCancel(t *testing.T) {
	client := fake.NewSimpleClientset()
	k := &KubernetesExecutor{Client: client, Namespace: "vp"}
	r := fixedRun(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ { // a redelivered run.started creates nothing twice
		if err := k.Launch(ctx, r); err != nil {
			t.Fatalf("Launch #%d = %v", i+1, err)
		}
	}
	jobs, _ := client.BatchV1().Jobs("vp").List(ctx, metav1.ListOptions{})
	secrets, _ := client.CoreV1().Secrets("vp").List(ctx, metav1.ListOptions{})
	if len(jobs.Items) != 1 || len(secrets.Items) != 1 {
		t.Fatalf("%d jobs and %d secrets, want 1 and 1", len(jobs.Items), len(secrets.Items))
	}
	job := jobs.Items[0]
	if job.Name != "vp-run-run-0001" || secrets.Items[0].OwnerReferences[0].Name != job.Name {
		t.Errorf("job %s, secret owner %v", job.Name, secrets.Items[0].OwnerReferences)
	}
	gpu := job.Spec.Template.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]
	if gpu.Value() != 2 || *job.Spec.BackoffLimit != 0 || *job.Spec.TTLSecondsAfterFinished != 3600 {
		t.Errorf("job spec: gpus %v backoff %d ttl %d", gpu.Value(), *job.Spec.BackoffLimit, *job.Spec.TTLSecondsAfterFinished)
	}
	if err := k.Cancel(ctx, "run-0001"); err != nil {
		t.Fatal(err)
	}
	if err := k.Cancel(ctx, "run-0001"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("second Cancel = %v, want ErrUnknownRun", err)
	}
	bad := r
	bad.Memory = "lots"
	if err := k.Launch(ctx, bad); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Errorf("Launch with a bad memory quantity = %v", err)
	}
}

func TestJobName(t *testing.T) {
	for in, want := range map[string]string{
		"run-0001":    "vp-run-run-0001",
		"Run_With.UP": "vp-run-run-with-up-",
	} {
		if got := JobName(in); !strings.HasPrefix(got, want) || len(got) > 63 {
			t.Errorf("JobName(%q) = %q, want prefix %q", in, got, want)
		}
	}
	long := strings.Repeat("x", 100)
	if n := JobName(long); len(n) > 63 || JobName(long+"y") == n {
		t.Errorf("JobName(long) = %q (%d), must be ≤63 and distinct", n, len(n))
	}
}
