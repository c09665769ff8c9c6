package kubernetes

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
	"github.com/vision-platform/vp/functions/gpu-runner/executor"
)

var update = flag.Bool("update", false, "rewrite the golden manifests")

// fixedRun is a run whose event has fixed attributes, so its manifests can
// be compared with a golden file.
func fixedRun(t *testing.T) executor.Run {
	t.Helper()
	id := "run-0001"
	digest := "sha256:" + strings.Repeat("d", 64)
	hp := events.Hyperparameters{Epochs: 1, BatchSize: 1, LearningRate: 0.1}
	mref := events.ModelRef{Framework: "torchvision", Name: "resnet18"}
	ev, err := events.New(context.Background(), "/test", events.RunStartedData{
		Job: events.JobRequestedData{ID: events.JobID(digest, mref, hp), Dataset: events.DatasetRef{Bucket: "datasets", Prefix: "x/", Digest: digest,
			Task: "classification", Format: "imagefolder"}, Model: mref, Hyperparameters: hp, Resources: events.Resources{GPUs: 2}},
		RunID: id, Image: "local", Executor: executor.Process, Output: "s3://runs/" + id + "/",
	}, events.WithTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		events.WithExtension(events.ExtTraceparent, "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"))
	if err != nil {
		t.Fatal(err)
	}
	return executor.Run{ID: id, Event: ev, GPUs: 2,
		Image: "registry.example/vp/timm@sha256:" + strings.Repeat("e", 64),
		CPU:   "8", Memory: "32Gi",
		Env: []string{"K_SINK=http://broker-ingress.knative-eventing.svc/vp/default"},
	}
}

// A Kubernetes API server cannot run here: these tests use client-go's fake
// clientset and golden manifests.
func TestManifestsGolden(t *testing.T) {
	k := &Executor{Namespace: "vp", ServiceAccount: "vp-runner", Env: []corev1.EnvVar{{Name: "VP_S3_ENDPOINT", Value: "minio.vp.svc:9000"}}}
	job, secret, err := k.Manifests(fixedRun(t))
	if err != nil {
		t.Fatal(err)
	}
	jb, err := yaml.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := yaml.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	got := string(jb) + "---\n" + string(sb)
	path := filepath.Join("testdata", "job_want.yaml")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run Golden -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("manifests (-want +got):\n%s", diff)
	}
}

func TestLaunchIdempotentAndCancel(t *testing.T) {
	client := fake.NewSimpleClientset()
	k := &Executor{Client: client, Namespace: "vp"}
	r := fixedRun(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ { // a redelivered run.started creates nothing twice
		if err := k.Launch(ctx, r); err != nil {
			t.Fatalf("Launch #%d = %v", i+1, err)
		}
	}
	jobs, err := client.BatchV1().Jobs("vp").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := client.CoreV1().Secrets("vp").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
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
	if err := k.Cancel(ctx, "run-0001"); !errors.Is(err, executor.ErrUnknownRun) {
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

// TestInClusterOutside: outside a pod there is no in-cluster executor, and
// Choose, given the option, reports the constructor's error.
func TestInClusterOutside(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := InCluster(); err == nil {
		t.Error("InCluster() outside a cluster succeeded")
	}
	proc := func() (*executor.ProcessExecutor, error) {
		t.Error("Choose(kubernetes) made the process executor")
		return nil, errors.New("not asked for")
	}
	e, _, err := executor.Choose(context.Background(), executor.Kubernetes, nil, proc, InClusterOption())
	if err == nil || e != nil {
		t.Errorf("Choose(kubernetes) outside a cluster = %v, %v; want no executor and an error", e, err)
	}
}
