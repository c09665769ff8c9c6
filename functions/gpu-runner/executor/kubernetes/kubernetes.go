package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientset "k8s.io/client-go/kubernetes"

	"github.com/vision-platform/vp/functions/gpu-runner/executor"
)

// Labels and the volume the kubernetes executor uses.
const (
	RunLabel       = "dev.visionplatform/run"
	JobLabel       = "dev.visionplatform/job"
	eventVolume    = "jobsink-event"
	eventMountPath = "/etc/jobsink-event"
)

// Executor runs each run as a batch/v1 Job named after the run
// id, with its run.started event in a Secret mounted where Knative's
// JobSink mounts it (/etc/jobsink-event/event). A redelivered run creates
// nothing twice: the Job's name is the run's.
type Executor struct {
	Client    clientset.Interface
	Namespace string
	// ServiceAccount the run's pod uses (optional).
	ServiceAccount string
	// TTLAfterFinished keeps a finished Job this long (seconds, default 1 h).
	TTLAfterFinished int32
	// BackoffLimit is the pod retries of a Job (default 0: the run agent
	// reports failures; a preempted run is started again by the runner).
	BackoffLimit int32
	// GracePeriod is the pod's terminationGracePeriodSeconds (default 60).
	GracePeriod int64
	Env         []corev1.EnvVar
	// NodeSelector and Tolerations place the run's pod: on the GPU nodes,
	// past their taints (InCluster reads them from VP_JOB_NODE_SELECTOR and
	// VP_JOB_TOLERATIONS).
	NodeSelector map[string]string
	Tolerations  []corev1.Toleration
}

var _ executor.Executor = (*Executor)(nil)

// Name is "kubernetes".
func (k *Executor) Name() string { return executor.Kubernetes }

var dns1123 = regexp.MustCompile(`[^a-z0-9-]+`)

// JobName is the Job of a run: the run id as a DNS-1123 label, with a hash
// suffix when it had to be changed or cut.
func JobName(runID string) string {
	n := strings.Trim(dns1123.ReplaceAllString(strings.ToLower(runID), "-"), "-")
	if n == runID && len("vp-run-"+n) <= 63 {
		return "vp-run-" + n
	}
	sum := sha256.Sum256([]byte(runID))
	h := hex.EncodeToString(sum[:])[:10]
	if len(n) > 63-len("vp-run--")-len(h) {
		n = strings.TrimRight(n[:63-len("vp-run--")-len(h)], "-")
	}
	return "vp-run-" + n + "-" + h
}

// Manifests returns the Job and the Secret that carry run r.
func (k *Executor) Manifests(r executor.Run) (*batchv1.Job, *corev1.Secret, error) {
	if err := r.Check(); err != nil {
		return nil, nil, err
	}
	if r.Image == "" {
		return nil, nil, fmt.Errorf("%w: run %s: no image", executor.ErrInvalidRun, r.ID)
	}
	ev, err := json.Marshal(r.Event)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the run.started event of run %s: %w", r.ID, err)
	}
	name := JobName(r.ID)
	jobID, _ := r.Event.Extensions()["jobid"].(string)
	labels := map[string]string{RunLabel: name, JobLabel: jobID, "app.kubernetes.io/managed-by": "vision-platform"}
	ttl, backoff, grace := k.TTLAfterFinished, k.BackoffLimit, k.GracePeriod
	if ttl == 0 {
		ttl = 3600
	}
	if grace == 0 {
		grace = 60
	}
	res := corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
	if r.GPUs > 0 {
		res.Limits["nvidia.com/gpu"] = *resource.NewQuantity(int64(r.GPUs), resource.DecimalSI)
	}
	for _, q := range []struct {
		name  corev1.ResourceName
		value string
	}{{corev1.ResourceCPU, r.CPU}, {corev1.ResourceMemory, r.Memory}} {
		if q.value == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.value)
		if err != nil {
			return nil, nil, fmt.Errorf("run %s: %s %q: %w", r.ID, q.name, q.value, err)
		}
		res.Limits[q.name], res.Requests[q.name] = v, v
	}
	env := append([]corev1.EnvVar(nil), k.Env...)
	for _, kv := range r.Env {
		n, v, _ := strings.Cut(kv, "=")
		env = append(env, corev1.EnvVar{Name: n, Value: v})
	}
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:            &backoff,
			TTLSecondsAfterFinished: &ttl,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					ServiceAccountName:            k.ServiceAccount,
					TerminationGracePeriodSeconds: &grace,
					NodeSelector:                  k.NodeSelector,
					Tolerations:                   k.Tolerations,
					Containers: []corev1.Container{{
						Name:         "run",
						Image:        r.Image,
						Args:         []string{"--event", eventMountPath + "/event"},
						Env:          env,
						Resources:    res,
						VolumeMounts: []corev1.VolumeMount{{Name: eventVolume, MountPath: eventMountPath, ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: eventVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}}}},
				},
			},
		},
	}
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.Namespace, Labels: labels},
		Immutable:  ptr(true),
		Data:       map[string][]byte{"event": ev},
	}
	return job, secret, nil
}

func ptr[T any](v T) *T { return &v }

// Launch creates the run's Job, then its event Secret owned by the Job (so
// it goes when the Job does). An existing Job means the run was launched.
func (k *Executor) Launch(ctx context.Context, r executor.Run) error {
	job, secret, err := k.Manifests(r)
	if err != nil {
		return err
	}
	created, err := k.Client.BatchV1().Jobs(k.Namespace).Create(ctx, job, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating Job %s: %w", job.Name, err)
	}
	secret.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: created.Name, UID: created.UID}}
	if _, err := k.Client.CoreV1().Secrets(k.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating Secret %s: %w", secret.Name, err)
	}
	return nil
}

// Cancel deletes the run's Job and its pods: the pod gets SIGTERM and its
// grace period, in which the agent reports the run cancelled.
func (k *Executor) Cancel(ctx context.Context, runID string) error {
	policy := metav1.DeletePropagationForeground
	err := k.Client.BatchV1().Jobs(k.Namespace).Delete(ctx, JobName(runID), metav1.DeleteOptions{PropagationPolicy: &policy})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %s", executor.ErrUnknownRun, runID)
	}
	if err != nil {
		return fmt.Errorf("deleting Job %s: %w", JobName(runID), err)
	}
	return nil
}
