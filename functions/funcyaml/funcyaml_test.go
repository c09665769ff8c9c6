package funcyaml

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const good = `specVersion: 0.36.0
name: job-trigger
runtime: go
created: 2026-11-29T00:00:00Z
invoke: cloudevent
run:
  envs:
    - name: VP_S3_ENDPOINT
      value: '{{ env:VP_S3_ENDPOINT }}'
deploy:
  options:
    scale: {min: 0, max: 10}
    resources:
      limits: {cpu: 500m, memory: 256Mi, concurrency: 20}
  subscriptions:
    - source: default
      filters:
        type: dev.visionplatform.dataset.uploaded
    - source: default
      filters:
        type: dev.visionplatform.job.cancelled
`

func TestParse(t *testing.T) {
	f, err := Parse("func.yaml", []byte(good))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	want := []Subscription{
		{Source: "default", Filters: map[string]string{"type": "dev.visionplatform.dataset.uploaded"}},
		{Source: "default", Filters: map[string]string{"type": "dev.visionplatform.job.cancelled"}},
	}
	if diff := cmp.Diff(want, f.Deploy.Subscriptions); diff != "" {
		t.Errorf("subscriptions (-want +got):\n%s", diff)
	}
	if got := []string{f.TriggerName(0), f.TriggerName(1)}; !cmp.Equal(got, []string{"job-trigger-dataset-uploaded", "job-trigger-job-cancelled"}) {
		t.Errorf("TriggerName = %v", got)
	}
	if v, ok := f.Env("VP_S3_ENDPOINT"); !ok || v != "{{ env:VP_S3_ENDPOINT }}" {
		t.Errorf("Env(VP_S3_ENDPOINT) = %q, %v", v, ok)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		desc, edit, want string
	}{
		{"unknown field", "invoke: cloudevent\n", "invoke: cloudevent\nbogus: 1\n"},
		{"bad name", "name: job-trigger\n", "name: Job_Trigger\n"},
		{"not go", "runtime: go\n", "runtime: python\n"},
		{"bad invoke", "invoke: cloudevent\n", "invoke: grpc\n"},
		{"subscription without source", "    - source: default\n      filters:\n        type: dev.visionplatform.job.cancelled\n", "    - filters:\n        type: dev.visionplatform.job.cancelled\n"},
		{"bad filter attribute", "        type: dev.visionplatform.dataset.uploaded\n", "        Type-X: dev.visionplatform.dataset.uploaded\n"},
		{"min above max", "scale: {min: 0, max: 10}", "scale: {min: 5, max: 2}"},
		{"bad quantity", "cpu: 500m", "cpu: lots"},
	}
	wants := map[string]string{
		"unknown field":               "func.yaml:6: field bogus not found",
		"bad name":                    "func.yaml:2: name:",
		"not go":                      "func.yaml:3: runtime:",
		"bad invoke":                  "func.yaml:5: invoke:",
		"subscription without source": "func.yaml:19: deploy.subscriptions.1.source: required",
		"bad filter attribute":        "func.yaml:17: deploy.subscriptions.0.filters:",
		"min above max":               "func.yaml:12: deploy.options.scale.max:",
		"bad quantity":                "func.yaml:14: deploy.options.resources.limits.cpu:",
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if !strings.Contains(good, c.edit) {
				t.Fatalf("test edit %q not in the good file", c.edit)
			}
			_, err := Parse("func.yaml", []byte(strings.Replace(good, c.edit, c.want, 1)))
			if err == nil || !strings.Contains(err.Error(), wants[c.desc]) {
				t.Errorf("Parse() = %v, want an error containing %q", err, wants[c.desc])
			}
		})
	}
}
