package emit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

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
		{"foreign type, bad JSON", Options{Type: "com.example.x", Source: "/cli", Data: "{oops"}, []string{"data", "line 1, column 2"}},
		{"bad extension", Options{Type: "com.example.x", Source: "/cli", Extensions: []string{"Bad-Name=1"}}, []string{"Extensions", "Bad-Name"}},
		{"no type", Options{Source: "/cli"}, []string{"Type", "required"}},
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

// TestBuildFieldErrors: a bad option is a *FieldError naming the field, not
// a flag (the command maps it to its flag).
func TestBuildFieldErrors(t *testing.T) {
	cases := []struct {
		desc string
		o    Options
		want FieldError
	}{
		{"no type", Options{Source: "/cli"}, FieldError{Field: "Type", Reason: "required"}},
		{"bad extension", Options{Type: "com.example.x", Source: "/cli", Extensions: []string{"Bad=1"}}, FieldError{Field: "Extensions", Value: "Bad=1", Reason: "want name=value with a lower-case alphanumeric name"}},
	}
	for _, c := range cases {
		_, err := Build(context.Background(), c.o)
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: Build() = %v, want a *FieldError", c.desc, err)
			continue
		}
		if diff := cmp.Diff(c.want, *fe); diff != "" {
			t.Errorf("%s: Build() error (-want +got):\n%s", c.desc, diff)
		}
		if strings.Contains(err.Error(), "--") {
			t.Errorf("%s: Build() error %q names a flag", c.desc, err)
		}
	}
}

// TestSendUsesTheSender: Send retries as the sender does (a 409 then
// accepted) and returns the sender's error for a refusal.
func TestSendUsesTheSender(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.WriteHeader(http.StatusConflict)
		case 2:
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"fields":[{"field":"data.digest"}]}`))
		}
	}))
	defer srv.Close()
	e, err := Build(context.Background(), Options{Type: "com.example.x", Source: "/cli", Data: "{}"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Send(context.Background(), srv.URL, e, false); err != nil {
		t.Fatalf("Send() after a 409 = %v, want nil", err)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("Send() made %d requests, want 2 (409 is retried)", got)
	}
	var he *HTTPError
	if err := Send(context.Background(), srv.URL, e, true); !errors.As(err, &he) || he.Status != 400 || !strings.Contains(he.Body, "data.digest") {
		t.Errorf("Send() of a refused event = %v, want an *HTTPError with 400 and the body", err)
	}
}
