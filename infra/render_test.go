package infra

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/serving/pkg/apis/autoscaling"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"

	"github.com/vision-platform/vp/functions/funcyaml"
	"github.com/vision-platform/vp/functions/gpu-runner/executor/kubernetes"
)

var update = flag.Bool("update", false, "rewrite the rendered manifests under infra/ (as vp deploy render does)")

func functions(t *testing.T) []*funcyaml.Function {
	t.Helper()
	fns, err := LoadFunctions("..")
	if err != nil {
		t.Fatal(err)
	}
	return fns
}

// TestGolden re-renders the manifests from the functions' func.yaml and
// compares them with the files committed under infra/: the files are the
// golden files (-update, or vp deploy render, rewrites them).
func TestGolden(t *testing.T) {
	out, err := Render(functions(t))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := out.Write("."); err != nil {
			t.Fatal(err)
		}
	}
	diffs, err := out.Diff(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		p, _, _ := strings.Cut(d, ":")
		got, _ := os.ReadFile(filepath.FromSlash(p))
		t.Errorf("%s (go test -run TestGolden -update, or vp deploy render, rewrites it) (-want +got):\n%s", d, cmp.Diff(string(out.Files[p]), string(got)))
	}
}

// TestManifestsValid: every object of the committed tree decodes strictly
// into its Kubernetes or Knative type, and every Service, Trigger and
// Broker passes Knative's own SetDefaults and Validate.
func TestManifestsValid(t *testing.T) {
	ctx := knativeContext(t)
	objs := readTree(t, ".")
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.Kind]++
		if err := knativeCheck(ctx, o); err != nil {
			t.Error(err)
		}
	}
	fns := functions(t)
	subs := 0
	for _, f := range fns {
		subs += len(f.Deploy.Subscriptions)
	}
	// The base's and the gpu overlay's Broker; a Service per function; a
	// Trigger per subscription.
	if kinds["Service"] != len(fns) || kinds["Trigger"] != subs || kinds["Broker"] != 2 {
		t.Errorf("kinds = %v, want %d Services, %d Triggers, 2 Brokers", kinds, len(fns), subs)
	}
}

// A test that would catch the checks passing everything.
func TestKnativeCheckRefuses(t *testing.T) {
	ctx := knativeContext(t)
	bad := map[string]string{
		"a Service with two ports": `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: x, namespace: vp}
spec:
  template:
    spec:
      containers:
      - image: registry.example/x@sha256:0000000000000000000000000000000000000000000000000000000000000000
        ports: [{containerPort: 8080}, {containerPort: 9090}]
`,
		"min-scale above max-scale": `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: x, namespace: vp}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/min-scale: "5", autoscaling.knative.dev/max-scale: "2"}
    spec:
      containers:
      - image: registry.example/x@sha256:0000000000000000000000000000000000000000000000000000000000000000
`,
		"a Trigger without a subscriber": `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: x, namespace: vp}
spec:
  broker: default
  subscriber: {}
`,
		"a Broker with a bad backoff delay": `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: x, namespace: vp, annotations: {eventing.knative.dev/broker.class: Kafka}}
spec:
  delivery: {backoffDelay: "0.2s"}
`,
	}
	for desc, doc := range bad {
		objs, err := decodeAll(desc, []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := knativeCheck(ctx, objs[0]); err == nil {
			t.Errorf("%s passes Knative's validation", desc)
		}
	}
	if _, err := decodeAll("typo", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\nbinarydata: {}\n")); err == nil {
		t.Errorf("a ConfigMap with an unknown field decodes")
	}
}

func serviceOf(t *testing.T, objs []object, name string) *servingv1.Service {
	t.Helper()
	for _, s := range ofKind[*servingv1.Service](objs) {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s", name)
	return nil
}

func envOf(s *servingv1.Service, name string) *corev1.EnvVar {
	for _, e := range s.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return &e
		}
	}
	return nil
}

// TestServices: each Service follows its func.yaml (scale bounds,
// concurrency, resources, service account), is cluster-local and non-root,
// and takes its settings from where they belong.
func TestServices(t *testing.T) {
	objs := readTree(t, ".")
	for _, f := range functions(t) {
		s := serviceOf(t, objs, f.Name)
		ann := s.Spec.Template.Annotations
		if sc := f.Deploy.Options.Scale; sc != nil && sc.Min != nil && ann[autoscaling.MinScaleAnnotationKey] != itoa(*sc.Min) {
			t.Errorf("%s: min-scale %q, func.yaml says %d", f.Name, ann[autoscaling.MinScaleAnnotationKey], *sc.Min)
		}
		if sc := f.Deploy.Options.Scale; sc != nil && sc.Max != nil && ann[autoscaling.MaxScaleAnnotationKey] != itoa(*sc.Max) {
			t.Errorf("%s: max-scale %q, func.yaml says %d", f.Name, ann[autoscaling.MaxScaleAnnotationKey], *sc.Max)
		}
		if r := f.Deploy.Options.Resources; r != nil && r.Limits != nil && r.Limits.Concurrency != nil {
			if cc := s.Spec.Template.Spec.ContainerConcurrency; cc == nil || *cc != *r.Limits.Concurrency {
				t.Errorf("%s: containerConcurrency %v, func.yaml says %d", f.Name, cc, *r.Limits.Concurrency)
			}
		}
		if s.Spec.Template.Spec.ServiceAccountName != f.Deploy.ServiceAccountName {
			t.Errorf("%s: service account %q, func.yaml says %q", f.Name, s.Spec.Template.Spec.ServiceAccountName, f.Deploy.ServiceAccountName)
		}
		c := s.Spec.Template.Spec.Containers[0]
		if !strings.Contains(c.Image, "@sha256:") {
			t.Errorf("%s: image %q is not by digest", f.Name, c.Image)
		}
		if local := s.Labels["networking.knative.dev/visibility"] == "cluster-local"; local == (f.Name == "gateway") {
			t.Errorf("%s: cluster-local %v; want only the gateway reachable from outside", f.Name, local)
		}
		if c.SecurityContext == nil || c.SecurityContext.RunAsNonRoot == nil || !*c.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: not non-root", f.Name)
		}
		if e := envOf(s, ListenAddress); e == nil || e.Value != "[::]:8080" {
			t.Errorf("%s: LISTEN_ADDRESS = %+v, want [::]:8080 (every address of the pod)", f.Name, e)
		}
		for _, e := range c.Env {
			credential := regexp.MustCompile(`SECRET|TOKEN|PASSWORD|ACCESS_KEY`).MatchString(e.Name) && !strings.HasSuffix(e.Name, "_FILE")
			if credential && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				t.Errorf("%s: the credential %s does not come from a Secret", f.Name, e.Name)
			}
		}
	}
	secret := func(name, key string) *corev1.EnvVar {
		return &corev1.EnvVar{ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}}
	}
	config := func(key string) *corev1.EnvVar {
		return &corev1.EnvVar{ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMap}, Key: key, Optional: ptr(true)}}}
	}
	literal := func(v string) *corev1.EnvVar { return &corev1.EnvVar{Value: v} }
	cases := []struct {
		fn, env string
		want    *corev1.EnvVar
	}{
		{"gpu-runner", "VP_EXECUTOR", literal("kubernetes")},
		{"gpu-runner", "VP_S3_ACCESS_KEY", secret("vp-s3", "accessKey")},
		{"gpu-runner", "K_SINK", config("K_SINK")},
		{"gpu-runner", JobNodeSelector, config(JobNodeSelector)},
		{"gpu-runner", "VP_RUNS_BUCKET", literal("runs")},
		{"dataset-intake", "VP_INTAKE_TOKEN", secret("vp-intake", "token")},
		{"dataset-intake", "VP_S3_SECRET_KEY", secret("vp-s3", "secretKey")},
		{"dataset-intake", "VP_S3_ENDPOINT", config("VP_S3_ENDPOINT")},
		{"job-trigger", "VP_TRIGGER_RULES", config("VP_TRIGGER_RULES")},
		{"dead-letter", "VP_DEAD_LETTER_BUCKET", literal("dead-letters")},
	}
	for _, c := range cases {
		got := envOf(serviceOf(t, objs, c.fn), c.env)
		if got != nil {
			c.want.Name = c.env
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", c.fn, c.env, diff)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestBroker: the Broker's delivery spec is the local broker's default,
// with the dead-letter service as its sink, and no Trigger sends events
// to the dead-letter service (it gets only what the broker gives up on).
func TestBroker(t *testing.T) {
	objs := readTree(t, ".")
	var base *eventingv1.Broker
	for _, o := range objs {
		if b, ok := o.Obj.(*eventingv1.Broker); ok && o.File == "base/broker.yaml" {
			base = b
		}
	}
	if base == nil {
		t.Fatal("no Broker in base/broker.yaml")
	}
	d := base.Spec.Delivery
	if d == nil || d.Retry == nil || *d.Retry != 10 || d.BackoffPolicy == nil || *d.BackoffPolicy != "exponential" ||
		d.BackoffDelay == nil || *d.BackoffDelay != "PT0.2S" || d.Timeout == nil || *d.Timeout != "PT60S" {
		t.Errorf("delivery = %+v, want 10 retries, exponential from PT0.2S, PT60S each", d)
	}
	if d == nil || d.DeadLetterSink == nil || d.DeadLetterSink.Ref == nil || d.DeadLetterSink.Ref.Kind != "Service" || d.DeadLetterSink.Ref.Name != DeadLetter {
		t.Errorf("dead-letter sink = %+v, want the dead-letter Knative Service", d)
	}
	serviceOf(t, objs, DeadLetter)
	for _, tr := range ofKind[*eventingv1.Trigger](objs) {
		if tr.Spec.Subscriber.Ref.Name == DeadLetter {
			t.Errorf("Trigger %s subscribes the dead-letter service", tr.Name)
		}
	}
}

// TestRBAC: the gpu-runner's Role allows exactly the Jobs and Secrets
// verbs, in its namespace; the kubernetes executor's every API call
// (launching and cancelling a run, against client-go's fake clientset)
// is one of them.
func TestRBAC(t *testing.T) {
	objs := readTree(t, ".")
	roles := ofKind[*rbacv1.Role](objs)
	bindings := ofKind[*rbacv1.RoleBinding](objs)
	if len(roles) != 1 || len(bindings) != 1 {
		t.Fatalf("%d Roles, %d RoleBindings; want one of each", len(roles), len(bindings))
	}
	role, rb := roles[0], bindings[0]
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
	}
	if diff := cmp.Diff(want, role.Rules); diff != "" {
		t.Errorf("Role rules (-want +got):\n%s", diff)
	}
	sa := serviceOf(t, objs, GPURunner).Spec.Template.Spec.ServiceAccountName
	wantRB := rbacv1.RoleBinding{Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: role.Namespace}},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}}
	if diff := cmp.Diff(wantRB.Subjects, rb.Subjects); diff != "" || rb.RoleRef != wantRB.RoleRef || rb.Namespace != role.Namespace {
		t.Errorf("RoleBinding %+v, want the gpu-runner's service account %s bound to Role %s in %s", rb, sa, role.Name, role.Namespace)
	}

	client := fake.NewSimpleClientset()
	k := &kubernetes.Executor{Client: client, Namespace: role.Namespace}
	r := &renderer{o: mustOptions(t)}
	run, err := r.exampleRun()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := k.Launch(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := k.Launch(ctx, run); err != nil { // a redelivered launch
		t.Fatal(err)
	}
	if err := k.Cancel(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	actions := client.Actions()
	if len(actions) < 3 {
		t.Fatalf("the executor made %d API calls, want at least 3", len(actions))
	}
	for _, a := range actions {
		if !allowed(role.Rules, a.GetResource(), a.GetVerb()) || a.GetNamespace() != role.Namespace {
			t.Errorf("the executor's %s %s in %q is not allowed by the Role", a.GetVerb(), a.GetResource(), a.GetNamespace())
		}
	}
}

func allowed(rules []rbacv1.PolicyRule, gvr schema.GroupVersionResource, verb string) bool {
	has := func(l []string, v string) bool {
		for _, x := range l {
			if x == v || x == "*" {
				return true
			}
		}
		return false
	}
	for _, r := range rules {
		if has(r.APIGroups, gvr.Group) && has(r.Resources, gvr.Resource) && has(r.Verbs, verb) {
			return true
		}
	}
	return false
}

func mustOptions(t *testing.T, opts ...Option) *options {
	t.Helper()
	o, err := makeOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestGPUTemplate: the GPU Job template asks for GPUs, is placed as the
// gpu overlay tells the kubernetes executor (its VP_JOB_NODE_SELECTOR and
// VP_JOB_TOLERATIONS, decoded as the executor decodes them), and its
// agent reports to the gpu overlay's K_SINK.
func TestGPUTemplate(t *testing.T) {
	objs := readTree(t, ".")
	var job *batchv1.Job
	var gpuConfig *corev1.ConfigMap
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *batchv1.Job:
			if o.File == "templates/gpu-run-job.yaml" {
				job = v
			}
		case *corev1.ConfigMap:
			if o.File == "overlays/gpu/config.yaml" {
				gpuConfig = v
			}
		}
	}
	if job == nil || gpuConfig == nil {
		t.Fatal("no Job in templates/gpu-run-job.yaml or no ConfigMap in overlays/gpu/config.yaml")
	}
	pod := job.Spec.Template.Spec
	c := pod.Containers[0]
	if q := c.Resources.Limits["nvidia.com/gpu"]; q.String() != "2" {
		t.Errorf("nvidia.com/gpu limit = %s, want 2", q.String())
	}
	var sel map[string]string
	var tol []corev1.Toleration
	if err := strictJSON(gpuConfig.Data[JobNodeSelector], &sel); err != nil {
		t.Fatal(err)
	}
	if err := strictJSON(gpuConfig.Data[JobTolerations], &tol); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sel, pod.NodeSelector); diff != "" || len(sel) == 0 {
		t.Errorf("node selector: the gpu overlay's %v (-overlay +template):\n%s", sel, diff)
	}
	if diff := cmp.Diff(tol, pod.Tolerations); diff != "" || len(tol) == 0 {
		t.Errorf("tolerations (-overlay +template):\n%s", diff)
	}
	sink := ""
	for _, e := range c.Env {
		if e.Name == "K_SINK" {
			sink = e.Value
		}
	}
	if sink == "" || sink != gpuConfig.Data["K_SINK"] || !strings.HasSuffix(sink, "/vp/default") {
		t.Errorf("the run's K_SINK = %q, want the gpu overlay's %q (the broker's ingress)", sink, gpuConfig.Data["K_SINK"])
	}
}

func strictJSON(s string, v any) error {
	d := json.NewDecoder(strings.NewReader(s))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// TestRenderOptions: the options reach the manifests, and bad values are
// errors naming the option.
func TestRenderOptions(t *testing.T) {
	fns := functions(t)
	ref := "registry.example/other/gpu-runner@sha256:" + strings.Repeat("a", 64)
	out, err := Render(fns, WithNamespace("ml"), WithImages(map[string]string{GPURunner: ref}), WithRegistry("reg.local:5000/vp"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll("gpu-runner.yaml", out.Files["base/gpu-runner.yaml"])
	if err != nil {
		t.Fatal(err)
	}
	if s := serviceOf(t, objs, GPURunner); s.Namespace != "ml" || s.Spec.Template.Spec.Containers[0].Image != ref {
		t.Errorf("gpu-runner: namespace %s, image %s; want ml, %s", s.Namespace, s.Spec.Template.Spec.Containers[0].Image, ref)
	}
	objs, err = decodeAll("run-recorder.yaml", out.Files["base/run-recorder.yaml"])
	if err != nil {
		t.Fatal(err)
	}
	if img := serviceOf(t, objs, "run-recorder").Spec.Template.Spec.Containers[0].Image; img != "reg.local:5000/vp/run-recorder@"+DefaultPlaceholder {
		t.Errorf("run-recorder image = %s, want the registry's with the placeholder digest", img)
	}
	if !strings.Contains(string(out.Files["base/config.yaml"]), "http://broker-ingress.knative-eventing.svc.cluster.local/ml/default") {
		t.Errorf("K_SINK does not follow the namespace:\n%s", out.Files["base/config.yaml"])
	}

	bad := []struct {
		desc  string
		opt   Option
		field string
	}{
		{"namespace", WithNamespace("ML"), FieldNamespace},
		{"tag, not digest", WithImages(map[string]string{GPURunner: "registry.example/x:latest"}), FieldImages},
		{"unknown function", WithImages(map[string]string{"nope": ref}), FieldImages},
		{"digest", WithPlaceholderDigest("sha256:abc"), FieldPlaceholder},
		{"backoff", WithDelivery(Delivery{Retry: 1, BackoffPolicy: "exponential", BackoffDelay: "200ms"}), FieldDelivery},
		{"policy", WithDelivery(Delivery{Retry: 1, BackoffPolicy: "random", BackoffDelay: "PT1S"}), FieldDelivery},
		{"toleration", WithPlacement(Placement{Tolerations: []corev1.Toleration{{Key: "x", Operator: "Maybe"}}}), FieldPlacement},
		{"queue dir", WithMinIO(MinIO{QueueDir: "relative"}), FieldMinIO},
		{"endpoint", WithMinIO(MinIO{Endpoint: "http://minio:9000"}), FieldMinIO},
	}
	for _, c := range bad {
		_, err := Render(fns, c.opt)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != c.field {
			t.Errorf("%s: Render = %v, want an *OptionError on %s", c.desc, err, c.field)
		}
	}
	if _, err := Render(nil); !errors.Is(err, ErrNoFunctions) {
		t.Errorf("Render(nil) = %v, want ErrNoFunctions", err)
	}
}

// TestEnvReferences: the func CLI's value references become a
// container's env as they should, and malformed ones are errors.
func TestEnvReferences(t *testing.T) {
	cases := []struct {
		value   string
		want    corev1.EnvVar
		wantErr string
	}{
		{value: "plain", want: corev1.EnvVar{Name: "X", Value: "plain"}},
		{value: "{{ secret:creds:token }}", want: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}}},
		{value: "{{configMap:settings:level}}", want: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "level"}}}},
		{value: "{{ env:VP_LOG_LEVEL }}", want: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMap}, Key: "VP_LOG_LEVEL", Optional: ptr(true)}}}},
		{value: "{{ env:VP_S3_SECRET_KEY }}", want: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "vp-s3"}, Key: "secretKey"}}}},
		{value: "{{ secret:creds }}", wantErr: "a name and a key"},
		{value: "{{ env:A:B }}", wantErr: "one name"},
		{value: "{{ file:/etc/x }}", wantErr: "is not {{ env:NAME }}"},
	}
	for _, c := range cases {
		r := &renderer{o: mustOptions(t), configKeys: map[string]bool{}, secretKeys: map[SecretKey]bool{}}
		f := &funcyaml.Function{Name: "f", Run: funcyaml.RunSpec{Envs: []funcyaml.Env{{Name: "X", Value: c.value}}}}
		got, err := r.env(f, 0)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("env(%q) = %v, want an error containing %q", c.value, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("env(%q) = %v", c.value, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("env(%q) (-want +got):\n%s", c.value, diff)
		}
	}
}
