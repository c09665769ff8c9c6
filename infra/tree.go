package infra

import (
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	duckv1 "knative.dev/pkg/apis/duck/v1"
)

// Kustomization is the part of kustomize's Kustomization the rendered
// tree uses.
type Kustomization struct {
	APIVersion       string            `json:"apiVersion"`
	Kind             string            `json:"kind"`
	Resources        []string          `json:"resources,omitempty"`
	GeneratorOptions *GeneratorOptions `json:"generatorOptions,omitempty"`
	SecretGenerator  []SecretGenerator `json:"secretGenerator,omitempty"`
	Patches          []KustomizePatch  `json:"patches,omitempty"`
}

// GeneratorOptions are kustomize's generatorOptions.
type GeneratorOptions struct {
	DisableNameSuffixHash bool `json:"disableNameSuffixHash,omitempty"`
}

// SecretGenerator is one of kustomize's secretGenerator entries.
type SecretGenerator struct {
	Name      string   `json:"name"`
	Namespace string   `json:"namespace,omitempty"`
	Literals  []string `json:"literals,omitempty"`
}

// KustomizePatch is one of kustomize's patches: a file holding a part of
// an object (a strategic merge patch).
type KustomizePatch struct {
	Path string `json:"path"`
}

func kustomization(resources []string, patches ...string) *Kustomization {
	k := &Kustomization{APIVersion: "kustomize.config.k8s.io/v1beta1", Kind: "Kustomization", Resources: resources}
	for _, p := range patches {
		k.Patches = append(k.Patches, KustomizePatch{Path: p})
	}
	return k
}

// devValues are the dev overlay's values of the Secrets' keys that must
// agree with each other or follow a format; any other key gets
// vp-dev-<secret>-<key>.
var devValues = map[SecretKey]string{
	{Name: "vp-s3", Key: "accessKey"}:         "vp-dev",
	{Name: "vp-s3", Key: "secretKey"}:         "vp-dev-secret",
	{Name: MinIOAdminSecret, Key: "user"}:     "vp-dev",
	{Name: MinIOAdminSecret, Key: "password"}: "vp-dev-secret",
	{Name: "vp-gateway", Key: "tokens"}:       "dev:write:vp-dev-gateway-token",
	{Name: IntakeSecret.Name, Key: "token"}:   "vp-dev-intake-token",
	{Name: "vp-mlflow", Key: "token"}:         "",
	{Name: "vp-mlflow", Key: "username"}:      "",
	{Name: "vp-mlflow", Key: "password"}:      "",
}

// devSecrets are the dev overlay's Secrets: every key the manifests read,
// with well-known values for a development cluster, never for one that
// holds anything of value (MinIO's credentials vp-dev / vp-dev-secret).
// MLflow's optional credentials are left out (no authentication).
func (r *renderer) devSecrets() []SecretGenerator {
	byName := map[string][]string{}
	for k := range r.secretKeys {
		v, known := devValues[k]
		if !known {
			v = "vp-dev-" + k.Name + "-" + k.Key
		}
		if known && v == "" {
			continue
		}
		byName[k.Name] = append(byName[k.Name], k.Key+"="+v)
	}
	var out []SecretGenerator
	for _, name := range sortedKeys(byName) {
		lits := byName[name]
		slices.Sort(lits)
		out = append(out, SecretGenerator{Name: name, Namespace: r.o.namespace, Literals: lits})
	}
	return out
}

// secretList lists the Secrets whose keys the manifests read, each with
// its keys ("vp-s3 (accessKey, secretKey)"): the ones they need, or the
// optional ones.
func (r *renderer) secretList(required bool) []string {
	byName := map[string][]string{}
	for k, req := range r.secretKeys {
		if req == required {
			byName[k.Name] = append(byName[k.Name], k.Key)
		}
	}
	var out []string
	for _, name := range sortedKeys(byName) {
		keys := byName[name]
		slices.Sort(keys)
		out = append(out, name+" ("+strings.Join(keys, ", ")+")")
	}
	return out
}

func (r *renderer) render() (*Output, error) {
	r.configKeys = map[string]bool{}
	r.secretKeys = map[SecretKey]bool{}
	out := &Output{Files: map[string][]byte{}}
	add := func(file, comment string, objs ...any) error {
		b, err := manifest(comment, objs...)
		if err != nil {
			return fmt.Errorf("rendering %s: %w", file, err)
		}
		out.Files[file] = b
		return nil
	}
	ns := r.o.namespace
	var resources []string
	base := func(name, comment string, objs ...any) error {
		resources = append(resources, name)
		return add(path.Join(BaseDir, name), comment, objs...)
	}

	// The functions first: they name the vp-config keys they read.
	type fnFile struct {
		name, comment string
		objs          []any
	}
	var fnFiles []fnFile
	for _, f := range r.fns {
		svc, err := r.service(f)
		if err != nil {
			return nil, err
		}
		objs := []any{svc}
		for _, tr := range r.triggers(f) {
			objs = append(objs, tr)
		}
		what := fmt.Sprintf("The %s function: its Knative Service", f.Name)
		if n := len(f.Deploy.Subscriptions); n > 0 {
			what += fmt.Sprintf(" and its Trigger%s (one per subscription of its func.yaml)", map[bool]string{true: "s", false: ""}[n > 1])
		}
		fnFiles = append(fnFiles, fnFile{f.Name + ".yaml", what + ".", objs})
	}
	job := r.webhookJob()

	if err := base("namespace.yaml", "The platform's namespace.", &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: r.labels(ns, "namespace")},
	}); err != nil {
		return nil, err
	}
	if err := base("config.yaml", "vp-config: the settings func.yaml gives as {{ env:NAME }} (credentials come from Secrets).\nA key it lacks leaves the setting to the function's default; the overlays set theirs.",
		r.configMap(r.configDefaults())); err != nil {
		return nil, err
	}
	var brokers []any
	for _, b := range r.brokers() {
		brokers = append(brokers, b)
	}
	if err := base("broker.yaml", "The Broker: every Trigger's delivery (retries, backoff, timeout) and the dead-letter sink.\nThe base's class is MTChannelBasedBroker with the cluster's default channel (in memory unless\nconfigured): for development only; the gpu overlay makes it a Kafka broker.", brokers...); err != nil {
		return nil, err
	}
	for _, f := range fnFiles {
		if err := base(f.name, f.comment, f.objs...); err != nil {
			return nil, err
		}
	}
	for _, f := range r.fns {
		if f.Name != GPURunner {
			continue
		}
		objs, err := r.rbac(f)
		if err != nil {
			return nil, err
		}
		if err := base("gpu-runner-rbac.yaml", "The gpu-runner's ServiceAccount and the Role it is bound to: create, get, list, watch and\ndelete the runs' Jobs and the Secrets that carry their events, in its namespace; nothing more.", objs...); err != nil {
			return nil, err
		}
	}
	if r.has[DatasetIntake] {
		m := r.o.minio
		var mc, env, envARNs []string
		for _, w := range m.Webhooks() {
			mc = append(mc, fmt.Sprintf("mc admin config set vp notify_webhook:%s %s", w.ID, strings.Join(w.Settings(m, ns), " ")))
			env = append(env, w.Env(m, ns)...)
			envARNs = append(envARNs, w.EnvARN())
		}
		mc = append(mc, "mc admin service restart vp", "mc mb --ignore-existing vp/BUCKET...")
		for _, w := range m.Webhooks() {
			mc = append(mc, fmt.Sprintf("mc event add --ignore-existing vp/%s %s --event put", m.Notify, w.ARN()))
		}
		comment := fmt.Sprintf("The Job that configures MinIO's webhooks to dataset-intake with mc (image %s):\n  %s\nthe token from the Secret %s (key %s), MinIO's admin from the Secret %s (keys user, password).\nTwo targets, as vp up makes them: a queued one (nothing lost while dataset-intake is down) and\none sent at once (MinIO sends its queue on a 3 s tick). A MinIO configured by its environment\ntakes the same settings as below; its targets are then named in upper case (%s),\nand only the buckets and the mc event add steps are needed:\n  %s",
			m.MCImage, strings.Join(mc, "\n  "), IntakeSecret.Name, IntakeSecret.Key, MinIOAdminSecret, strings.Join(envARNs, ", "), strings.Join(env, "\n  "))
		if err := base("minio-webhook.yaml", comment, job); err != nil {
			return nil, err
		}
	}
	b, err := objectYAML(kustomization(resources))
	if err != nil {
		return nil, err
	}
	out.Files[path.Join(BaseDir, "kustomization.yaml")] = append([]byte(header("The base: kubectl apply -k infra/overlays/dev (or gpu) applies it with an overlay.")), b...)

	// dev: the base with well-known Secrets and console logs.
	dev := kustomization([]string{"../../base"}, "config.yaml")
	dev.GeneratorOptions = &GeneratorOptions{DisableNameSuffixHash: true}
	dev.SecretGenerator = r.devSecrets()
	if b, err = objectYAML(dev); err != nil {
		return nil, err
	}
	out.Files[path.Join(DevDir, "kustomization.yaml")] = append([]byte(header("The dev overlay: a development cluster (the in-memory broker, well-known Secrets).\n  kubectl apply -k infra/overlays/dev")), b...)
	if err := add(path.Join(DevDir, "config.yaml"), "vp-config in development: console logs at debug level.",
		r.configMap(map[string]string{"VP_LOG_FORMAT": "console", "VP_LOG_LEVEL": "debug"})); err != nil {
		return nil, err
	}

	// gpu: a Kafka broker, runs placed on GPU nodes; Secrets made by the
	// operator.
	gpu := kustomization([]string{"../../base"}, "broker.yaml", "config.yaml")
	if b, err = objectYAML(gpu); err != nil {
		return nil, err
	}
	out.Files[path.Join(GPUDir, "kustomization.yaml")] = append([]byte(header("The gpu overlay: a cluster with GPU nodes and a durable (Kafka) broker.\n  kubectl apply -k infra/overlays/gpu\nThese Secrets must exist in the namespace first (infra/README.md):\n  "+strings.Join(r.secretList(true), "\n  ")+"\nand these may (their keys are optional):\n  "+strings.Join(r.secretList(false), "\n  "))), b...)
	gpuBroker := &eventingv1.Broker{
		TypeMeta: metav1.TypeMeta{APIVersion: "eventing.knative.dev/v1", Kind: "Broker"},
		ObjectMeta: metav1.ObjectMeta{Name: DefaultBroker, Namespace: ns,
			Annotations: map[string]string{BrokerClassAnnotation: KafkaBroker}},
		Spec: eventingv1.BrokerSpec{Config: &duckv1.KReference{APIVersion: "v1", Kind: "ConfigMap", Name: "kafka-broker-config", Namespace: "knative-eventing"}},
	}
	if err := add(path.Join(GPUDir, "broker.yaml"), "The broker on Kafka (Knative's eventing-kafka-broker, its kafka-broker-config): durable, replicated.", gpuBroker); err != nil {
		return nil, err
	}
	place, err := r.placementConfig()
	if err != nil {
		return nil, err
	}
	place["K_SINK"] = r.gpuIngress()
	if err := add(path.Join(GPUDir, "config.yaml"), "vp-config on the GPU cluster: K_SINK to the Kafka broker's ingress, and where the runs' pods go\n(the kubernetes executor's VP_JOB_NODE_SELECTOR and VP_JOB_TOLERATIONS).",
		r.configMap(place)); err != nil {
		return nil, err
	}

	tmpl, err := r.gpuJobTemplate()
	if err != nil {
		return nil, err
	}
	if err := add(path.Join(TemplatesDir, "gpu-run-job.yaml"), "The GPU Job template: what the gpu-runner creates for one run (here an example run) with the\nkubernetes executor, made by the executor's own code with the gpu overlay's settings. Not\napplied: the gpu-runner makes a Job and its event Secret per run.", tmpl...); err != nil {
		return nil, err
	}
	return out, nil
}
