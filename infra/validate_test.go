package infra

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	eventingconfig "knative.dev/eventing/pkg/apis/config"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/eventing/pkg/apis/feature"
	"knative.dev/pkg/apis"
	servingconfig "knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	autoscalerconfig "knative.dev/serving/pkg/autoscaler/config"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// object is one document of a manifest, decoded strictly into its type.
type object struct {
	File, APIVersion, Kind, Name, Namespace string
	// Obj is a pointer to the typed object (*servingv1.Service, ...).
	Obj any
}

func (o object) String() string {
	return fmt.Sprintf("%s: %s %s/%s", o.File, o.Kind, o.Namespace, o.Name)
}

// types are the kinds the manifests may hold, each with its Go type.
var types = map[string]func() any{
	"v1/Namespace":                                  func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                     func() any { return &corev1.Secret{} },
	"v1/ServiceAccount":                             func() any { return &corev1.ServiceAccount{} },
	"rbac.authorization.k8s.io/v1/Role":             func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":      func() any { return &rbacv1.RoleBinding{} },
	"batch/v1/Job":                                  func() any { return &batchv1.Job{} },
	"serving.knative.dev/v1/Service":                func() any { return &servingv1.Service{} },
	"eventing.knative.dev/v1/Trigger":               func() any { return &eventingv1.Trigger{} },
	"eventing.knative.dev/v1/Broker":                func() any { return &eventingv1.Broker{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return &Kustomization{} },
}

// decodeAll splits a multi-document manifest and decodes each document
// strictly (strictDecode) into the Go type of its kind.
func decodeAll(file string, data []byte) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if head.Kind == "" {
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue // the header's comment
			}
			return nil, fmt.Errorf("%s: a document without a kind:\n%s", file, doc)
		}
		mk, ok := types[head.APIVersion+"/"+head.Kind]
		if !ok {
			return nil, fmt.Errorf("%s: %s %s: a kind the manifests should not hold", file, head.APIVersion, head.Kind)
		}
		obj := mk()
		if err := strictDecode(doc, obj); err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", file, head.Kind, head.Metadata.Name, err)
		}
		out = append(out, object{File: file, APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, Namespace: head.Metadata.Namespace, Obj: obj})
	}
}

// strictDecode decodes a YAML document as the Kubernetes API server
// decodes a request in strict mode (sigs.k8s.io/json: field names
// case-sensitive; an unknown or repeated field is an error).
func strictDecode(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.Bytes()
}

// moduleDir is where the go command keeps a module this one requires.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -m %s: %v\n%s", module, err, out)
	}
	return strings.TrimSpace(string(out))
}

// shippedConfigMap reads one of the ConfigMaps a Knative release installs,
// from the module's config/ folder.
func shippedConfigMap(t *testing.T, module, file string) *corev1.ConfigMap {
	t.Helper()
	p := filepath.Join(moduleDir(t, module), "config", "core", "configmaps", file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{}
	if err := yaml.Unmarshal(b, cm); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return cm
}

var (
	ctxOnce sync.Once
	ctxErr  error
	knCtx   context.Context
)

// knativeContext is a context as Knative's webhooks give SetDefaults and
// Validate on create: Serving's and Eventing's configuration as their
// releases ship it (config-defaults, config-features, config-autoscaler,
// config-br-defaults, Eventing's config-features).
func knativeContext(t *testing.T) context.Context {
	t.Helper()
	ctxOnce.Do(func() {
		const serving, eventing = "knative.dev/serving", "knative.dev/eventing"
		defaults, err := servingconfig.NewDefaultsConfigFromConfigMap(shippedConfigMap(t, serving, "defaults.yaml"))
		if err != nil {
			ctxErr = err
			return
		}
		features, err := servingconfig.NewFeaturesConfigFromConfigMap(shippedConfigMap(t, serving, "features.yaml"))
		if err != nil {
			ctxErr = err
			return
		}
		as, err := autoscalerconfig.NewConfigFromConfigMap(shippedConfigMap(t, serving, "autoscaler.yaml"))
		if err != nil {
			ctxErr = err
			return
		}
		brDefaults, err := eventingconfig.NewDefaultsConfigFromConfigMap(shippedConfigMap(t, eventing, "default-broker.yaml"))
		if err != nil {
			ctxErr = err
			return
		}
		flags, err := feature.NewFlagsConfigFromConfigMap(shippedConfigMap(t, eventing, "features.yaml"))
		if err != nil {
			ctxErr = err
			return
		}
		ctx := servingconfig.ToContext(context.Background(), &servingconfig.Config{Defaults: defaults, Features: features, Autoscaler: as})
		ctx = eventingconfig.ToContext(ctx, &eventingconfig.Config{Defaults: brDefaults})
		ctx = feature.ToContext(ctx, flags)
		knCtx = apis.WithinCreate(ctx)
	})
	if ctxErr != nil {
		t.Fatalf("making Knative's configuration: %v", ctxErr)
	}
	return knCtx
}

// validatable is a Knative object: its webhook defaults it, then
// validates it.
type validatable interface {
	apis.Defaultable
	apis.Validatable
}

// knativeCheck runs Knative's own SetDefaults and Validate on a Knative
// object (a Service, Trigger or Broker); other objects pass.
func knativeCheck(ctx context.Context, o object) error {
	v, ok := o.Obj.(validatable)
	if !ok {
		return nil
	}
	v.SetDefaults(ctx)
	if err := v.Validate(ctx); err != nil {
		return fmt.Errorf("%s: Knative's validation: %w", o, err)
	}
	return nil
}

// readTree decodes every manifest of the managed folders under dir.
func readTree(t *testing.T, dir string) []object {
	t.Helper()
	var all []object
	for _, d := range ManagedDirs {
		files, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(d), "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no manifests in %s", filepath.Join(dir, d))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, f)
			objs, err := decodeAll(filepath.ToSlash(rel), b)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, objs...)
		}
	}
	return all
}

func ofKind[T any](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}
