package infra

import (
	"os/exec"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"

	"github.com/vision-platform/vp/internal/testsupport"
)

// kustomize builds an overlay with kubectl's kustomize (Debian's kubectl;
// make deps installs it) and decodes its output strictly.
func kustomize(t *testing.T, dir string) []object {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is missing (make deps installs Debian's kubectl): %v", err)
	}
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, msg)
	}
	objs, err := decodeAll("kubectl kustomize "+dir, out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// containers are the containers of the Services and Jobs in objs.
func containers(objs []object) []corev1.Container {
	var out []corev1.Container
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *servingv1.Service:
			out = append(out, v.Spec.Template.Spec.Containers...)
		case *batchv1.Job:
			out = append(out, v.Spec.Template.Spec.InitContainers...)
			out = append(out, v.Spec.Template.Spec.Containers...)
		}
	}
	return out
}

func configData(t *testing.T, objs []object) map[string]string {
	t.Helper()
	for _, cm := range ofKind[*corev1.ConfigMap](objs) {
		if cm.Name == ConfigMap {
			return cm.Data
		}
	}
	t.Fatalf("no ConfigMap %s", ConfigMap)
	return nil
}

func brokerOf(t *testing.T, objs []object) *eventingv1.Broker {
	t.Helper()
	bs := ofKind[*eventingv1.Broker](objs)
	if len(bs) != 1 {
		t.Fatalf("%d Brokers, want 1", len(bs))
	}
	return bs[0]
}

// TestInt_Kustomize builds each overlay as kubectl apply -k would: the
// output decodes strictly, passes Knative's validation, and has what the
// overlay is for.
func TestInt_Kustomize(t *testing.T) {
	testsupport.Integration(t)
	ctx := knativeContext(t)
	fns := functions(t)
	check := func(t *testing.T, objs []object) {
		t.Helper()
		services := 0
		for _, o := range objs {
			if o.Namespace != DefaultNamespace && o.Kind != "Namespace" {
				t.Errorf("%s is not in namespace %s", o, DefaultNamespace)
			}
			if err := knativeCheck(ctx, o); err != nil {
				t.Error(err)
			}
			if _, ok := o.Obj.(*servingv1.Service); ok {
				services++
			}
		}
		if services != len(fns) {
			t.Errorf("%d Services, want %d", services, len(fns))
		}
	}

	t.Run("dev", func(t *testing.T) {
		objs := kustomize(t, DevDir)
		check(t, objs)
		secrets := map[string][]string{}
		for _, s := range ofKind[*corev1.Secret](objs) {
			for k := range s.Data {
				secrets[s.Name] = append(secrets[s.Name], k)
			}
		}
		// Every Secret key a container needs is there.
		needed := 0
		for _, c := range containers(objs) {
			for _, e := range c.Env {
				ref := e.ValueFrom
				if ref == nil || ref.SecretKeyRef == nil || (ref.SecretKeyRef.Optional != nil && *ref.SecretKeyRef.Optional) {
					continue
				}
				needed++
				if !slices.Contains(secrets[ref.SecretKeyRef.Name], ref.SecretKeyRef.Key) {
					t.Errorf("container %s needs Secret %s key %s, which the dev overlay lacks (have %v)", c.Name, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key, secrets)
				}
			}
		}
		if needed == 0 {
			t.Error("no container reads a Secret: the check saw nothing")
		}
		cfg := configData(t, objs)
		if cfg["VP_LOG_FORMAT"] != "console" || cfg["K_SINK"] != Ingress(MTChannelBasedBroker, DefaultNamespace, DefaultBroker) {
			t.Errorf("vp-config = %v, want console logs and the channel broker's ingress", cfg)
		}
		if c := brokerOf(t, objs).Annotations[BrokerClassAnnotation]; c != MTChannelBasedBroker {
			t.Errorf("broker class %q, want %s", c, MTChannelBasedBroker)
		}
	})

	t.Run("gpu", func(t *testing.T) {
		objs := kustomize(t, GPUDir)
		check(t, objs)
		if s := ofKind[*corev1.Secret](objs); len(s) != 0 {
			t.Errorf("the gpu overlay makes %d Secrets, want none (the operator makes them)", len(s))
		}
		b := brokerOf(t, objs)
		if b.Annotations[BrokerClassAnnotation] != KafkaBroker || b.Spec.Config == nil || b.Spec.Config.Name != "kafka-broker-config" {
			t.Errorf("broker = %+v, want the Kafka class and kafka-broker-config", b.ObjectMeta)
		}
		if d := b.Spec.Delivery; d == nil || d.DeadLetterSink == nil || d.DeadLetterSink.Ref.Name != DeadLetter {
			t.Errorf("the gpu overlay's broker lost the base's delivery: %+v", d)
		}
		cfg := configData(t, objs)
		want := map[string]string{"K_SINK": Ingress(KafkaBroker, DefaultNamespace, DefaultBroker)}
		got := map[string]string{"K_SINK": cfg["K_SINK"]}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("vp-config (-want +got):\n%s", diff)
		}
		if cfg[JobNodeSelector] == "" || cfg[JobTolerations] == "" || cfg["VP_S3_ENDPOINT"] == "" {
			t.Errorf("vp-config = %v, want the base's settings and the runs' placement", cfg)
		}
	})
}
