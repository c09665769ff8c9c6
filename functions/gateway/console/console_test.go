package console

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/registry"
)

// TestRender: every page renders, with its data and with none, and the
// text a person reads escapes what it shows.
func TestRender(t *testing.T) {
	m, err := registry.Default().Lookup("torchvision", "resnet18")
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string]any{
		"models":   ModelsPage{Page: Page{Title: "Models", Active: "models", User: "u", Write: true}, Cards: []Card{{Model: m}}, Count: 1, Total: 1},
		"jobs":     JobsPage{Page: Page{Active: "jobs", User: "u"}, Jobs: []api.JobSummary{{JobID: "job-1", State: "running", Reason: "<b>"}}},
		"job":      JobPage{Page: Page{Active: "job", User: "u"}, Job: ledger.JobStatus{JobID: "job-1", State: "running"}},
		"compare":  ComparePage{Page: Page{Active: "compare", User: "u"}},
		"datasets": DatasetsPage{Page: Page{Active: "datasets", User: "u", Write: true}},
		"images":   ImagesPage{Page: Page{Active: "images", User: "u"}},
		"login":    LoginPage{Next: "/models", Error: "wrong"},
	}
	for name, data := range pages {
		var b bytes.Buffer
		if err := Render(&b, name, data); err != nil {
			t.Errorf("Render(%s) = %v", name, err)
			continue
		}
		if !strings.Contains(b.String(), "</html>") {
			t.Errorf("Render(%s) is not a whole page", name)
		}
	}
	var b bytes.Buffer
	if err := Render(&b, "jobs", pages["jobs"]); err != nil || strings.Contains(b.String(), "<b>") {
		t.Errorf("a reason with markup is not escaped: %v", err)
	}
	if err := Render(&b, "nope", nil); err == nil {
		t.Error("Render of an unknown page = nil error")
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
