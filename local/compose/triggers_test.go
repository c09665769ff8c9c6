package compose

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	datasetintake "github.com/vision-platform/vp/functions/dataset-intake"
	deadletter "github.com/vision-platform/vp/functions/dead-letter"
	"github.com/vision-platform/vp/functions/funcyaml"
	"github.com/vision-platform/vp/functions/gateway"
	gpurunner "github.com/vision-platform/vp/functions/gpu-runner"
	imagebuilder "github.com/vision-platform/vp/functions/image-builder"
	jobtrigger "github.com/vision-platform/vp/functions/job-trigger"
	mlflowsync "github.com/vision-platform/vp/functions/mlflow-sync"
	runrecorder "github.com/vision-platform/vp/functions/run-recorder"
	"github.com/vision-platform/vp/local/broker"
	"github.com/vision-platform/vp/local/up"
)

var update = flag.Bool("update", false, "rewrite triggers.yaml and triggers-mlflow.yaml from the functions' func.yaml")

// delivery is every trigger's delivery, as the Knative Broker of infra/
// gives it (retries, backoff, timeout), its dead letters to the
// dead-letter function; mlflow-sync's redelivers for about an hour, as vp
// up's does, so that run events wait while MLflow is down.
const (
	delivery       = "  delivery:\n    retry: 10\n    backoffPolicy: exponential\n    backoffDelay: PT0.2S\n    timeout: PT300S\n    deadLetterSink:\n      uri: http://dead-letter:8080/\n"
	mlflowDelivery = "  delivery:\n    retry: 60\n    backoffPolicy: linear\n    backoffDelay: PT2S\n    timeout: PT300S\n    deadLetterSink:\n      uri: http://dead-letter:8080/\n"
)

// triggers is the broker's triggers under compose: one per subscription
// of each function's func.yaml, delivering to the function's service.
func triggers(t *testing.T, mlflow bool) string {
	t.Helper()
	yamls := [][]byte{datasetintake.FuncYAML, jobtrigger.FuncYAML, imagebuilder.FuncYAML, gpurunner.FuncYAML, runrecorder.FuncYAML, deadletter.FuncYAML, gateway.FuncYAML}
	if mlflow {
		yamls = append(yamls, mlflowsync.FuncYAML)
	}
	var specs []*funcyaml.Function
	for _, y := range yamls {
		s, err := funcyaml.Parse("func.yaml", y)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	docs := up.SubscriptionTriggers(specs, func(name string) string { return "http://" + name + ":8080/" })
	var b strings.Builder
	b.WriteString("# The broker's triggers under compose: one per subscription of each function's\n")
	b.WriteString("# func.yaml, to the function's service, dead letters to the dead-letter function.\n")
	b.WriteString("# Made by go test ./local/compose -run TestTriggers -update: do not edit.\n")
	for _, doc := range strings.Split(docs, "---\n") {
		if doc == "" {
			continue
		}
		// A document ends with its subscriber; its delivery follows.
		b.WriteString("---\n" + doc)
		if strings.Contains(doc, "uri: http://mlflow-sync:") {
			b.WriteString(mlflowDelivery)
		} else {
			b.WriteString(delivery)
		}
	}
	return b.String()
}

// TestTriggers: triggers.yaml (and triggers-mlflow.yaml, with mlflow-sync)
// are what the functions' func.yaml make, and the broker takes them.
func TestTriggers(t *testing.T) {
	for _, tc := range []struct {
		file   string
		mlflow bool
	}{{"triggers.yaml", false}, {"triggers-mlflow.yaml", true}} {
		t.Run(tc.file, func(t *testing.T) {
			want := triggers(t, tc.mlflow)
			if *update {
				if err := os.WriteFile(tc.file, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, string(got)); diff != "" {
				t.Errorf("%s is not what the func.yaml make (go test ./local/compose -run TestTriggers -update) (-want +got):\n%s", tc.file, diff)
			}
			trs, err := broker.ParseTriggers(tc.file, got)
			if err != nil {
				t.Fatal(err)
			}
			subscribers := map[string]bool{}
			for _, tr := range trs {
				subscribers[tr.Spec.Subscriber.URI] = true
				if d := tr.Spec.Delivery; d == nil || d.DeadLetterSink == nil || d.DeadLetterSink.URI != "http://dead-letter:8080/" {
					t.Errorf("trigger %s has no dead-letter sink", tr.Metadata.Name)
				}
			}
			for _, fn := range []string{"job-trigger", "image-builder", "gpu-runner", "run-recorder", "gateway"} {
				if !subscribers[fmt.Sprintf("http://%s:8080/", fn)] {
					t.Errorf("%s: no trigger delivers to %s", tc.file, fn)
				}
			}
			if got := subscribers["http://mlflow-sync:8080/"]; got != tc.mlflow {
				t.Errorf("%s: a trigger to mlflow-sync = %v, want %v", tc.file, got, tc.mlflow)
			}
		})
	}
}
