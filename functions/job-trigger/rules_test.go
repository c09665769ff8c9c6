package jobtrigger

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/functions/funcyaml"
	"github.com/vision-platform/vp/registry"
)

func TestFuncYAML(t *testing.T) {
	f, err := funcyaml.Parse("func.yaml", FuncYAML)
	if err != nil {
		t.Fatalf("Parse(func.yaml) = %v", err)
	}
	if f.Name != "job-trigger" || f.Invoke != funcyaml.InvokeCloudEvent {
		t.Errorf("func.yaml: name %q, invoke %q; want job-trigger, cloudevent", f.Name, f.Invoke)
	}
	want := []funcyaml.Subscription{{Source: "default", Filters: map[string]string{"type": "dev.visionplatform.dataset.uploaded"}}}
	if diff := cmp.Diff(want, f.Deploy.Subscriptions); diff != "" {
		t.Errorf("subscriptions (-want +got):\n%s", diff)
	}
	for _, s := range Settings {
		if v, ok := f.Env(s); !ok || v != "{{ env:"+s+" }}" {
			t.Errorf("func.yaml run.envs %s = %q, %v; want {{ env:%s }}", s, v, ok, s)
		}
	}
}

const rulesYAML = `rules:
  - bucket: datasets
    prefix: "pets/*"
    model: torchvision/resnet18
    hyperparameters: {epochs: 3}
  - prefix: shared/
    model: torchvision/resnet50
    resources: {gpus: 1, executor: kubernetes}
  - bucket: datasets
    model: torchvision/resnet18
`

func TestRulesMatch(t *testing.T) {
	r, err := ParseRules("rules.yaml", []byte(rulesYAML))
	if err != nil {
		t.Fatalf("ParseRules() = %v", err)
	}
	for _, c := range []struct {
		bucket, prefix string
		want           int
	}{
		{"datasets", "pets/cats/", 0},
		{"datasets", "pets/cats/v2/", 2}, // * stays within one folder
		{"datasets", "shared/x/", 1},
		{"other", "shared/x/", 1},
		{"other", "pets/cats/", -1},
		{"datasets", "anything/", 2},
	} {
		_, i, ok := r.Match(c.bucket, c.prefix)
		if i != c.want || ok != (c.want >= 0) {
			t.Errorf("Match(%s, %s) = %d, %v; want rule %d", c.bucket, c.prefix, i, ok, c.want)
		}
	}
	if got := r.at("rules.1.model"); got != "rules.yaml:7" {
		t.Errorf("at(rules.1.model) = %q, want rules.yaml:7", got)
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, c := range []struct{ rules, want string }{
		{"rules:\n  - model: resnet18\n", "rules.yaml:2: rules.0.model: \"resnet18\" is not framework/name"},
		{"rules:\n  - model: a/b\n    prefix: \"[x\"\n", "rules.yaml:3: rules.0.prefix: \"[x\" is not a glob"},
		{"rules:\n  - model: a/b\n    hyperparameters: {epochs: -1}\n", "rules.yaml:3: rules.0.hyperparameters.epochs: out of range"},
		{"rules:\n  - model: a/b\n    resources: {executor: slurm}\n", "rules.yaml:3: rules.0.resources.executor: \"slurm\" is not auto or one of"},
		{"rules:\n  - model: a/b\n    colour: red\n", "rules.yaml:3: field colour not found"},
	} {
		_, err := ParseRules("rules.yaml", []byte(c.rules))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseRules(%q) = %v, want %q", c.rules, err, c.want)
		}
	}
}

func TestLoadRules(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(file, []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{file, rulesYAML, `{"rules": [{"bucket": "datasets", "prefix": "pets/*", "model": "torchvision/resnet18"}, {"model": "a/b"}, {"model": "c/d"}]}`} {
		r, err := LoadRules(v)
		if err != nil {
			t.Errorf("LoadRules(%.30q) = %v", v, err)
			continue
		}
		if len(r.Rules) != 3 || r.Rules[0].Prefix != "pets/*" {
			t.Errorf("LoadRules(%.30q) = %+v", v, r.Rules)
		}
	}
	if r, err := LoadRules(""); err != nil || len(r.Rules) != 0 {
		t.Errorf("LoadRules(\"\") = %v, %v; want no rules", r, err)
	}
	if _, err := LoadRules(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "VP_TRIGGER_RULES: reading the rules file") {
		t.Errorf("LoadRules(missing file) = %v", err)
	}
	if _, err := LoadRules("rules: [{model: nope}]"); err == nil || !strings.Contains(err.Error(), "VP_TRIGGER_RULES:1: rules.0.model") {
		t.Errorf("LoadRules(bad inline) = %v, want it placed at VP_TRIGGER_RULES:1", err)
	}
}

func TestStartSettings(t *testing.T) {
	for _, c := range []struct {
		cfg  map[string]string
		want string
	}{
		{map[string]string{"VP_S3_ENDPOINT": "127.0.0.1:1", "VP_TRIGGER_RULES": "rules:\n  - model: torchvision/resnet999\n"},
			"VP_TRIGGER_RULES:2: rules.0.model: no model torchvision/resnet999 in the catalog"},
		{map[string]string{"VP_S3_ENDPOINT": "127.0.0.1:1", "VP_TRIGGER_RULES": "/no/such/rules.yaml"}, "VP_TRIGGER_RULES: reading the rules file"},
		{map[string]string{"VP_S3_ENDPOINT": "127.0.0.1:1", "VP_TRIGGER_TIMEOUT": "soon"}, "VP_TRIGGER_TIMEOUT:"},
		{map[string]string{}, "VP_S3_ENDPOINT is not set"},
		{map[string]string{"VP_S3_ENDPOINT": "127.0.0.1:1", "VP_LOG_LEVEL": "loud"}, "VP_LOG_LEVEL:"},
	} {
		err := New().Start(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start(%v) = %v, want %q", c.cfg, err, c.want)
		}
	}
	f := New(WithCatalog(registry.Default()))
	if err := f.Start(context.Background(), map[string]string{"VP_S3_ENDPOINT": "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.Ready(context.Background()); !ok {
		t.Error("Ready() = false after Start")
	}
}
