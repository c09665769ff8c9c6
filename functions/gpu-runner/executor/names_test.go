package executor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/testsupport"
)

// schemaEnum reads the enum of a property of an event's JSON Schema, the
// property named by its path of property names.
func schemaEnum(t *testing.T, typ string, path ...string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testsupport.ModuleRoot(t), "events", "schemas", typ+".json"))
	if err != nil {
		t.Fatal(err)
	}
	type node struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Enum       []string                   `json:"enum"`
	}
	var n node
	if err := json.Unmarshal(b, &n); err != nil {
		t.Fatalf("%s.json: %v", typ, err)
	}
	for _, p := range path {
		raw, ok := n.Properties[p]
		if !ok {
			t.Fatalf("%s.json has no property %q", typ, p)
		}
		n = node{}
		if err := json.Unmarshal(raw, &n); err != nil {
			t.Fatalf("%s.json %s: %v", typ, p, err)
		}
	}
	return n.Enum
}

// TestNames keeps the executors' names one list: the names the executors
// report are events.Executors, the enum run.started's schema accepts, and
// Choose knows every executor a job may ask for.
func TestNames(t *testing.T) {
	names := []string{Process, Docker, Kubernetes}
	if diff := cmp.Diff(events.Executors, names); diff != "" {
		t.Errorf("executor names differ from events.Executors (-events +executor):\n%s", diff)
	}
	if diff := cmp.Diff(schemaEnum(t, "run.started", "executor"), names); diff != "" {
		t.Errorf("executor names differ from run.started's executor enum (-schema +executor):\n%s", diff)
	}
	ctx := context.Background()
	proc := func() (*ProcessExecutor, error) {
		return NewProcess(ctx, "vp-agent", t.TempDir(), noGPUs, zerolog.Nop())
	}
	noEngine := &DockerExecutor{Host: nowhere(t)}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, mode := range schemaEnum(t, "job.requested", "resources", "executor") {
		if _, _, err := Choose(ctx, mode, noEngine, proc); errors.Is(err, ErrUnknownExecutor) {
			t.Errorf("job.requested accepts executor %q, Choose does not: %v", mode, err)
		}
	}
	if _, _, err := Choose(ctx, "slurm", noEngine, proc); !errors.Is(err, ErrUnknownExecutor) {
		t.Errorf("Choose(slurm) = %v, want ErrUnknownExecutor", err)
	}
}
