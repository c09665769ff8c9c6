package infra

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/serving/pkg/apis/autoscaling"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"

	"github.com/vision-platform/vp/functions/funcyaml"
)

// Broker classes and where their ingress is.
const (
	BrokerClassAnnotation = "eventing.knative.dev/broker.class"
	// MTChannelBasedBroker is Knative's channel-based broker: durable
	// only with a durable channel (NATS JetStream, Kafka), never the
	// in-memory channel outside development.
	MTChannelBasedBroker = "MTChannelBasedBroker"
	// KafkaBroker is Knative's Kafka broker (eventing-kafka-broker).
	KafkaBroker = "Kafka"
)

// Ingress is the URL of a broker's ingress for its class: where K_SINK
// points so that the functions' and the run agent's events reach it.
func Ingress(class, namespace, broker string) string {
	host := "broker-ingress.knative-eventing.svc.cluster.local"
	if class == KafkaBroker {
		host = "kafka-broker-ingress.knative-eventing.svc.cluster.local"
	}
	return "http://" + host + "/" + namespace + "/" + broker
}

// DefaultBroker is the broker K_SINK names.
const DefaultBroker = "default"

// Port is where every function listens in its pod (Knative's default).
const Port = 8080

// Settings the renderer sets beyond func.yaml.
const (
	// ListenAddress is func-go's address setting: every address of the
	// pod (with PORT alone func-go would listen on loopback only, and
	// the kubelet's probes would fail).
	ListenAddress = "LISTEN_ADDRESS"
	// Executor is the gpu-runner's executor setting: kubernetes on a
	// cluster.
	Executor = "VP_EXECUTOR"
	// JobNodeSelector and JobTolerations place the runs' pods (the
	// kubernetes executor reads them).
	JobNodeSelector = "VP_JOB_NODE_SELECTOR"
	JobTolerations  = "VP_JOB_TOLERATIONS"
)

func ptr[T any](v T) *T { return &v }

type renderer struct {
	o   *options
	fns []*funcyaml.Function
	has map[string]bool
	// configKeys are the vp-config keys the Services read.
	configKeys map[string]bool
	// secretKeys are the Secrets' keys the manifests read: true when one
	// reference to it is not optional.
	secretKeys map[SecretKey]bool
}

func (r *renderer) labels(name, component string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      name,
		"app.kubernetes.io/part-of":   PartOf,
		"app.kubernetes.io/component": component,
	}
}

func (r *renderer) meta(name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: r.o.namespace, Labels: r.labels(name, component)}
}

func (r *renderer) image(fn string) string {
	if ref, ok := r.o.images[fn]; ok {
		return ref
	}
	return r.o.registry + "/" + fn + "@" + r.o.placeholder
}

// refRE matches the func CLI's value references: {{ env:NAME }},
// {{ secret:NAME:KEY }}, {{ configMap:NAME:KEY }}.
var refRE = regexp.MustCompile(`^\{\{\s*(env|secret|configMap):([-._a-zA-Z0-9]+)(?::([-._a-zA-Z0-9]+))?\s*\}\}$`)

func (r *renderer) configRef(env string) corev1.EnvVar {
	r.configKeys[env] = true
	return corev1.EnvVar{Name: env, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMap}, Key: env, Optional: ptr(true)}}}
}

func (r *renderer) secretRef(env string, s SecretKey) corev1.EnvVar {
	k := SecretKey{Name: s.Name, Key: s.Key}
	r.secretKeys[k] = r.secretKeys[k] || !s.Optional
	sel := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: s.Name}, Key: s.Key}
	if s.Optional {
		sel.Optional = ptr(true)
	}
	return corev1.EnvVar{Name: env, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: sel}}
}

// env is one func.yaml env as a container's: a literal; a Secret's key
// ({{ secret:NAME:KEY }}, or a credential given as {{ env:NAME }}); a
// ConfigMap's key ({{ configMap:NAME:KEY }}); or vp-config's key NAME
// ({{ env:NAME }}, optional: a key vp-config lacks leaves the setting to
// the function's default).
func (r *renderer) env(f *funcyaml.Function, i int) (corev1.EnvVar, error) {
	e := f.Run.Envs[i]
	m := refRE.FindStringSubmatch(e.Value)
	if m == nil {
		if strings.Contains(e.Value, "{{") {
			return corev1.EnvVar{}, fmt.Errorf("%s: run.envs.%d (%s): %q is not {{ env:NAME }}, {{ secret:NAME:KEY }} or {{ configMap:NAME:KEY }}", f.Name, i, e.Name, e.Value)
		}
		return corev1.EnvVar{Name: e.Name, Value: e.Value}, nil
	}
	kind, ref, key := m[1], m[2], m[3]
	switch {
	case kind == "env" && key == "":
		if s, ok := r.o.secretEnvs[ref]; ok {
			return r.secretRef(e.Name, s), nil
		}
		v := r.configRef(ref)
		v.Name = e.Name
		return v, nil
	case kind == "secret" && key != "":
		return r.secretRef(e.Name, SecretKey{Name: ref, Key: key}), nil
	case kind == "configMap" && key != "":
		return corev1.EnvVar{Name: e.Name, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: ref}, Key: key}}}, nil
	}
	return corev1.EnvVar{}, fmt.Errorf("%s: run.envs.%d (%s): %q: a %s reference takes %s", f.Name, i, e.Name, e.Value, kind,
		map[string]string{"env": "one name", "secret": "a name and a key", "configMap": "a name and a key"}[kind])
}

func (r *renderer) envs(f *funcyaml.Function) ([]corev1.EnvVar, error) {
	var out []corev1.EnvVar
	names := map[string]bool{}
	for i, e := range f.Run.Envs {
		if names[e.Name] {
			return nil, fmt.Errorf("%s: run.envs: %s is set twice", f.Name, e.Name)
		}
		names[e.Name] = true
		v, err := r.env(f, i)
		if err != nil {
			return nil, err
		}
		if f.Name == GPURunner && e.Name == Executor {
			v = corev1.EnvVar{Name: Executor, Value: "kubernetes"}
		}
		out = append(out, v)
	}
	if !names[ListenAddress] {
		out = append(out, corev1.EnvVar{Name: ListenAddress, Value: fmt.Sprintf("[::]:%d", Port)})
	}
	if f.Name == GPURunner {
		if !names[Executor] {
			out = append(out, corev1.EnvVar{Name: Executor, Value: "kubernetes"})
		}
		for _, n := range []string{JobNodeSelector, JobTolerations} {
			if !names[n] {
				out = append(out, r.configRef(n))
			}
		}
	}
	return out, nil
}

func quantity(fn, field, v string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return q, fmt.Errorf("%s: deploy.options.resources.%s %q: %w", fn, field, v, err)
	}
	return q, nil
}

func resources(f *funcyaml.Function) (corev1.ResourceRequirements, *int64, error) {
	var req corev1.ResourceRequirements
	var cc *int64
	res := f.Deploy.Options.Resources
	if res == nil {
		return req, nil, nil
	}
	for _, side := range []struct {
		name string
		l    *funcyaml.ResourceList
		dst  *corev1.ResourceList
	}{{"requests", res.Requests, &req.Requests}, {"limits", res.Limits, &req.Limits}} {
		if side.l == nil {
			continue
		}
		for _, q := range []struct {
			name corev1.ResourceName
			v    string
		}{{corev1.ResourceCPU, side.l.CPU}, {corev1.ResourceMemory, side.l.Memory}} {
			if q.v == "" {
				continue
			}
			v, err := quantity(f.Name, side.name+"."+string(q.name), q.v)
			if err != nil {
				return req, nil, err
			}
			if *side.dst == nil {
				*side.dst = corev1.ResourceList{}
			}
			(*side.dst)[q.name] = v
		}
		if side.name == "limits" && side.l.Concurrency != nil {
			cc = ptr(*side.l.Concurrency)
		}
	}
	return req, cc, nil
}

func scaleAnnotations(f *funcyaml.Function) map[string]string {
	ann := map[string]string{}
	if s := f.Deploy.Options.Scale; s != nil {
		if s.Min != nil {
			ann[autoscaling.MinScaleAnnotationKey] = strconv.FormatInt(*s.Min, 10)
		}
		if s.Max != nil {
			ann[autoscaling.MaxScaleAnnotationKey] = strconv.FormatInt(*s.Max, 10)
		}
		if s.Metric != "" {
			ann[autoscaling.MetricAnnotationKey] = s.Metric
		}
		if s.Target != nil {
			ann[autoscaling.TargetAnnotationKey] = strconv.FormatFloat(*s.Target, 'f', -1, 64)
		}
		if s.Utilization != nil {
			ann[autoscaling.TargetUtilizationPercentageKey] = strconv.FormatFloat(*s.Utilization, 'f', -1, 64)
		}
	}
	for k, v := range f.Deploy.Annotations {
		ann[k] = v
	}
	if len(ann) == 0 {
		return nil
	}
	return ann
}

// service is the Knative Service of f: cluster-local unless public (events
// come through the broker, MinIO's webhook from inside the cluster),
// non-root, /tmp an emptyDir, func-go's health endpoints as probes.
func (r *renderer) service(f *funcyaml.Function) (*servingv1.Service, error) {
	env, err := r.envs(f)
	if err != nil {
		return nil, err
	}
	res, cc, err := resources(f)
	if err != nil {
		return nil, err
	}
	live, ready := f.Deploy.HealthEndpoints.Liveness, f.Deploy.HealthEndpoints.Readiness
	if live == "" {
		live = "/health/liveness"
	}
	if ready == "" {
		ready = "/health/readiness"
	}
	meta := r.meta(f.Name, "function")
	if !r.o.public[f.Name] {
		meta.Labels["networking.knative.dev/visibility"] = "cluster-local"
	}
	tmplLabels := r.labels(f.Name, "function")
	for _, l := range f.Deploy.Labels {
		meta.Labels[l.Key] = l.Value
		tmplLabels[l.Key] = l.Value
	}
	return &servingv1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "serving.knative.dev/v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec: servingv1.ServiceSpec{ConfigurationSpec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: tmplLabels, Annotations: scaleAnnotations(f)},
			Spec: servingv1.RevisionSpec{
				ContainerConcurrency: cc,
				PodSpec: corev1.PodSpec{
					ServiceAccountName: f.Deploy.ServiceAccountName,
					Containers: []corev1.Container{{
						Name:           "function",
						Image:          r.image(f.Name),
						Ports:          []corev1.ContainerPort{{Name: "http1", ContainerPort: Port}},
						Env:            env,
						Resources:      res,
						LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: live, Port: intstr.FromInt32(Port)}}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: ready, Port: intstr.FromInt32(Port)}}},
						VolumeMounts:   []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot:             ptr(true),
							AllowPrivilegeEscalation: ptr(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
					}},
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		}}},
	}, nil
}

func serviceRef(name string) *duckv1.KReference {
	return &duckv1.KReference{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: name}
}

// triggers are f's Triggers: one per subscription, from the same
// declaration (and names) as vp up's, filtering on its attributes.
func (r *renderer) triggers(f *funcyaml.Function) []*eventingv1.Trigger {
	var out []*eventingv1.Trigger
	for i, s := range f.Deploy.Subscriptions {
		tr := &eventingv1.Trigger{
			TypeMeta:   metav1.TypeMeta{APIVersion: "eventing.knative.dev/v1", Kind: "Trigger"},
			ObjectMeta: r.meta(f.TriggerName(i), "trigger"),
			Spec: eventingv1.TriggerSpec{
				Broker:     s.Source,
				Subscriber: duckv1.Destination{Ref: serviceRef(f.Name)},
			},
		}
		tr.Labels["app.kubernetes.io/name"] = f.Name
		if len(s.Filters) > 0 {
			attrs := eventingv1.TriggerFilterAttributes{}
			for k, v := range s.Filters {
				attrs[k] = v
			}
			tr.Spec.Filter = &eventingv1.TriggerFilter{Attributes: attrs}
		}
		out = append(out, tr)
	}
	return out
}

// brokers are the brokers the subscriptions name, and the default one
// (K_SINK's), each with the delivery spec and, when the dead-letter
// function is rendered, its dead-letter sink.
func (r *renderer) brokers() []*eventingv1.Broker {
	names := map[string]bool{DefaultBroker: true}
	for _, f := range r.fns {
		for _, s := range f.Deploy.Subscriptions {
			names[s.Source] = true
		}
	}
	var out []*eventingv1.Broker
	for _, n := range sortedKeys(names) {
		d := r.o.delivery
		policy := eventingduckv1.BackoffPolicyType(d.BackoffPolicy)
		ds := &eventingduckv1.DeliverySpec{Retry: ptr(d.Retry), BackoffPolicy: &policy, BackoffDelay: ptr(d.BackoffDelay)}
		if d.Timeout != "" {
			ds.Timeout = ptr(d.Timeout)
		}
		if r.has[DeadLetter] {
			ds.DeadLetterSink = &duckv1.Destination{Ref: serviceRef(DeadLetter)}
		}
		meta := r.meta(n, "broker")
		meta.Annotations = map[string]string{BrokerClassAnnotation: MTChannelBasedBroker}
		out = append(out, &eventingv1.Broker{
			TypeMeta:   metav1.TypeMeta{APIVersion: "eventing.knative.dev/v1", Kind: "Broker"},
			ObjectMeta: meta,
			Spec:       eventingv1.BrokerSpec{Delivery: ds},
		})
	}
	return out
}

// JobRules are all the gpu-runner may do: create, watch and delete the
// runs' Jobs and the Secrets that carry their events, in its namespace.
func JobRules() []rbacv1.PolicyRule {
	verbs := []string{"create", "get", "list", "watch", "delete"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: verbs},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: slices.Clone(verbs)},
	}
}

// rbac is the gpu-runner's ServiceAccount, Role and RoleBinding.
func (r *renderer) rbac(f *funcyaml.Function) ([]any, error) {
	sa := f.Deploy.ServiceAccountName
	if sa == "" {
		return nil, fmt.Errorf("%s: deploy.serviceAccountName is required: the Role that lets it launch Jobs is bound to it", f.Name)
	}
	return []any{
		&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: r.meta(sa, "function")},
		&rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}, ObjectMeta: r.meta(sa, "function"), Rules: JobRules()},
		&rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: r.meta(sa, "function"),
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: r.o.namespace}},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
		},
	}, nil
}

// configDefaults are vp-config's values in the base, for the keys the
// Services read; other keys are left to the overlays (and, unset, to the
// functions' defaults).
func (r *renderer) configDefaults() map[string]string {
	all := map[string]string{
		"K_SINK":           Ingress(MTChannelBasedBroker, r.o.namespace, DefaultBroker),
		"VP_S3_ENDPOINT":   r.o.minio.Endpoint,
		"VP_S3_SECURE":     strconv.FormatBool(r.o.minio.Secure),
		"VP_REGISTRY":      r.o.registry,
		"VP_LEDGER_BUCKET": "platform",
		"VP_LOG_FORMAT":    "json",
		"VP_LOG_LEVEL":     "info",
	}
	out := map[string]string{}
	for k := range r.configKeys {
		if v, ok := all[k]; ok {
			out[k] = v
		}
	}
	return out
}

func (r *renderer) configMap(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: r.meta(ConfigMap, "config"),
		Data:       data,
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
