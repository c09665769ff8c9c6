package infra

import (
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Secrets the manifests read (the overlays, or the operator, make them).
var (
	// IntakeSecret holds the token MinIO's webhook sends dataset-intake.
	IntakeSecret = SecretKey{Name: "vp-intake", Key: "token"}
	// MinIOAdminSecret holds MinIO's admin credentials (keys user and
	// password), for the Job that configures the webhook.
	MinIOAdminSecret = "vp-minio-admin"
)

// MinIOWebhookJob is the name of the Job that configures MinIO.
const MinIOWebhookJob = "minio-webhook"

// IntakeURL is dataset-intake's address inside the cluster (its
// cluster-local Knative Service): MinIO's webhook endpoint.
func IntakeURL(namespace string) string {
	return "http://" + DatasetIntake + "." + namespace + ".svc.cluster.local/"
}

// Webhook is one notify_webhook target of MinIO to dataset-intake.
type Webhook struct {
	ID string
	// Queued targets keep what they cannot send in QueueDir, and send
	// from it on a fixed 3-second tick; the other sends at once and drops
	// what fails.
	Queued bool
}

// Webhooks are the two targets MinIO tells dataset-intake through, as vp
// up gives them: one queued (nothing is lost while dataset-intake is
// down), one sent at once (MinIO's queue adds up to 3 s before the
// upload is heard of). dataset-intake is idempotent: the second copy of a
// notification changes nothing.
func (m MinIO) Webhooks() []Webhook {
	return []Webhook{{ID: m.WebhookID, Queued: true}, {ID: m.WebhookID + "fast"}}
}

// Settings are the target's settings, as `mc admin config set ALIAS
// notify_webhook:ID` takes them (key=value), the token left as
// $(VP_INTAKE_TOKEN) for the Job's environment to fill in.
func (w Webhook) Settings(m MinIO, namespace string) []string {
	s := []string{"endpoint=" + IntakeURL(namespace), "auth_token=$(VP_INTAKE_TOKEN)"}
	if w.Queued {
		s = append(s, "queue_dir="+m.QueueDir, "queue_limit=100000")
	}
	return s
}

// Env are the same settings as MinIO server environment variables
// (MINIO_NOTIFY_WEBHOOK_*_<ID>), for a MinIO configured by its
// environment; the token's value comes from the Secret IntakeSecret.
func (w Webhook) Env(m MinIO, namespace string) []string {
	id := strings.ToUpper(w.ID)
	env := []string{
		"MINIO_NOTIFY_WEBHOOK_ENABLE_" + id + "=on",
		"MINIO_NOTIFY_WEBHOOK_ENDPOINT_" + id + "=" + IntakeURL(namespace),
		"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_" + id + "=<Secret " + IntakeSecret.Name + ", key " + IntakeSecret.Key + ">",
	}
	if w.Queued {
		env = append(env, "MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_"+id+"="+m.QueueDir, "MINIO_NOTIFY_WEBHOOK_QUEUE_LIMIT_"+id+"=100000")
	}
	return env
}

// ARN is the target's ARN, for the bucket notification.
func (w Webhook) ARN() string { return "arn:minio:sqs::" + w.ID + ":webhook" }

// EnvARN is the ARN of the same target configured by Env: MinIO names a
// target after its variables' suffix, upper-case.
func (w Webhook) EnvARN() string { return "arn:minio:sqs::" + strings.ToUpper(w.ID) + ":webhook" }

// webhookJob configures MinIO with mc, one step per container, in order
// (init containers, then the last): the webhook targets (their endpoint,
// dataset-intake; the token; the queue folder of the queued one), a
// restart (MinIO applies notify_webhook settings at start), the buckets,
// and the notifications of new objects in the datasets bucket. Each step
// can run again: a Job run twice changes nothing.
func (r *renderer) webhookJob() *batchv1.Job {
	m := r.o.minio
	scheme := "http"
	if m.Secure {
		scheme = "https"
	}
	alias := "vp"
	env := []corev1.EnvVar{
		r.secretRef("MINIO_USER", SecretKey{Name: MinIOAdminSecret, Key: "user"}),
		r.secretRef("MINIO_PASSWORD", SecretKey{Name: MinIOAdminSecret, Key: "password"}),
		{Name: "VP_S3_ENDPOINT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMap}, Key: "VP_S3_ENDPOINT"}}},
		// mc takes an alias from MC_HOST_<alias>; Kubernetes fills in
		// $(NAME) from the variables above (a password with URL
		// special characters must be URL-escaped in the Secret).
		{Name: "MC_HOST_" + alias, Value: fmt.Sprintf("%s://$(MINIO_USER):$(MINIO_PASSWORD)@$(VP_S3_ENDPOINT)", scheme)},
		{Name: "MC_CONFIG_DIR", Value: "/tmp/.mc"},
	}
	r.configKeys["VP_S3_ENDPOINT"] = true
	withToken := append(append([]corev1.EnvVar(nil), env...), r.secretRef("VP_INTAKE_TOKEN", IntakeSecret))
	step := func(name string, env []corev1.EnvVar, args ...string) corev1.Container {
		return corev1.Container{
			Name: name, Image: m.MCImage, Command: []string{"mc"}, Args: args, Env: env,
			VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}
	}
	buckets := []string{"mb", "--ignore-existing"}
	for _, b := range m.Buckets {
		buckets = append(buckets, alias+"/"+b)
	}
	var steps []corev1.Container
	hooks := m.Webhooks()
	for _, w := range hooks {
		steps = append(steps, step("webhook-"+w.ID, withToken, append([]string{"admin", "config", "set", alias, "notify_webhook:" + w.ID}, w.Settings(m, r.o.namespace)...)...))
	}
	steps = append(steps, step("restart", env, "admin", "service", "restart", alias), step("buckets", env, buckets...))
	for _, w := range hooks {
		steps = append(steps, step("notify-"+w.ID, env, "event", "add", "--ignore-existing", alias+"/"+m.Notify, w.ARN(), "--event", "put"))
	}
	inits, last := steps[:len(steps)-1], steps[len(steps)-1]
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: r.meta(MinIOWebhookJob, "setup"),
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr(int32(10)),
			// Gone an hour after it ends: kubectl apply -k runs it again
			// (with any new settings), which changes nothing otherwise.
			TTLSecondsAfterFinished: ptr(int32(3600)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: r.labels(MinIOWebhookJob, "setup")},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyOnFailure,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr(true),
						RunAsUser:      ptr(int64(65532)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					InitContainers: inits,
					Containers:     []corev1.Container{last},
					Volumes:        []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		},
	}
	return job
}
