package emit

import (
	"context"
	"strings"
	"testing"

	"github.com/vision-platform/vp/events"
)

const jobJSON = `{
  "dataset": {"bucket": "datasets", "prefix": "cats/v1/", "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "task": "classification", "format": "imagefolder"},
  "model": {"framework": "timm", "name": "resnet18"},
  "hyperparameters": {"epochs": 2, "batchSize": 8, "learningRate": 0.01},
  "resources": {"gpus": 0},
  "jobId": "%s"
}`

func TestBuildVocabulary(t *testing.T) {
	hp := events.Hyperparameters{Epochs: 2, BatchSize: 8, LearningRate: 0.01}
	id := events.JobID("sha256:"+strings.Repeat("a", 64), events.ModelRef{Framework: "timm", Name: "resnet18"}, hp)
	e, err := Build(context.Background(), Options{Type: string(events.JobRequested), Source: "/cli", Data: strings.Replace(jobJSON, "%s", id, 1), Extensions: []string{"team=vision"}})
	if err != nil {
		t.Fatalf("Build() = %v", err)
	}
	if e.ID() != id || e.Extensions()["jobid"] != id || e.Extensions()["team"] != "vision" || e.DataSchema() == "" {
		t.Errorf("Build() = id %q, extensions %v, dataschema %q", e.ID(), e.Extensions(), e.DataSchema())
	}
}

func TestBuildErrors(t *testing.T) {
	cases := []struct {
		desc string
		o    Options
		want []string
	}{
		{"syntax error has line and column", Options{Type: string(events.JobRequested), Source: "/cli", DataName: "job.json", Data: "{\n  \"model\": {,\n}"}, []string{"job.json", "line 2, column 13"}},
		{"unknown field", Options{Type: string(events.JobRequested), Source: "/cli", DataName: "job.json", Data: `{"modle": {}}`}, []string{"job.json", "modle"}},
		{"invalid payload names fields", Options{Type: string(events.JobRequested), Source: "/cli", DataName: "job.json", Data: `{"jobId": "x"}`}, []string{"job.json", "data.dataset.bucket", "data.hyperparameters.epochs", "data.jobId"}},
		{"wrong type", Options{Type: string(events.JobRequested), Source: "/cli", DataName: "job.json", Data: "{\"resources\": {\"gpus\": \"two\"}}"}, []string{"job.json", "line 1", "resources.gpus"}},
		{"foreign type, bad JSON", Options{Type: "com.example.x", Source: "/cli", Data: "{oops"}, []string{"--data", "line 1, column 2"}},
		{"bad extension", Options{Type: "com.example.x", Source: "/cli", Extensions: []string{"Bad-Name=1"}}, []string{"--ext", "Bad-Name"}},
		{"no type", Options{Source: "/cli"}, []string{"--type"}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			_, err := Build(context.Background(), c.o)
			if err == nil {
				t.Fatal("Build() = nil error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Build() error %q lacks %q", err, w)
				}
			}
		})
	}
}
