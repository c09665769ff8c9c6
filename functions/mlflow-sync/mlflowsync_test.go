package mlflowsync

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/funcyaml"
)

func TestFuncYAML(t *testing.T) {
	f, err := funcyaml.Parse("func.yaml", FuncYAML)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range f.Deploy.Subscriptions {
		got = append(got, s.Source+" "+s.Filters["type"])
	}
	want := []string{"default " + string(events.RunStarted), "default " + string(events.RunProgress), "default " + string(events.RunFinished)}
	if f.Name != "mlflow-sync" {
		t.Errorf("func.yaml name = %q, want mlflow-sync", f.Name)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("func.yaml subscriptions (-want +got):\n%s", diff)
	}
	envs := map[string]bool{}
	for _, e := range f.Run.Envs {
		envs[e.Name] = true
	}
	for _, name := range []string{EnvTrackingURI, EnvToken, EnvUsername, EnvPassword, EnvRegisterModels, EnvRunsBucket, "VP_S3_ENDPOINT", "VP_S3_ACCESS_KEY", "VP_S3_SECRET_KEY"} {
		if !envs[name] {
			t.Errorf("func.yaml does not set %s", name)
		}
	}
}

// TestStartConfig: bad settings are errors at Start that name the
// setting, and never print a secret.
func TestStartConfig(t *testing.T) {
	ok := "http://127.0.0.1:5000"
	for _, tc := range []struct {
		desc string
		cfg  map[string]string
		want string // in the error; "" for none
	}{
		{"no tracking URI", map[string]string{}, EnvTrackingURI},
		{"blank tracking URI", map[string]string{EnvTrackingURI: "  "}, EnvTrackingURI},
		{"not http", map[string]string{EnvTrackingURI: "ftp://host/"}, EnvTrackingURI},
		{"no host", map[string]string{EnvTrackingURI: "http:///path"}, EnvTrackingURI},
		{"not a URL", map[string]string{EnvTrackingURI: "127.0.0.1:5000"}, EnvTrackingURI},
		{"credentials in the URI", map[string]string{EnvTrackingURI: "http://me:hunter2-secret@127.0.0.1:5000"}, "credentials in the tracking URI"},
		{"token and basic", map[string]string{EnvTrackingURI: ok, EnvToken: "t0ken-secret", EnvUsername: "me"}, EnvToken},
		{"user without password", map[string]string{EnvTrackingURI: ok, EnvUsername: "me"}, EnvPassword},
		{"password without user", map[string]string{EnvTrackingURI: ok, EnvPassword: "hunter2-secret"}, EnvUsername},
		{"register not a bool", map[string]string{EnvTrackingURI: ok, EnvRegisterModels: "yes please"}, EnvRegisterModels},
		{"model name without {name}", map[string]string{EnvTrackingURI: ok, EnvModelName: "{framework}"}, EnvModelName},
		{"model name with a slash", map[string]string{EnvTrackingURI: ok, EnvModelName: "vp/{name}"}, EnvModelName},
		{"bad timeout", map[string]string{EnvTrackingURI: ok, EnvTimeout: "soon"}, EnvTimeout},
		{"zero timeout", map[string]string{EnvTrackingURI: ok, EnvTimeout: "0s"}, EnvTimeout},
		{"bad store setting", map[string]string{EnvTrackingURI: ok, "VP_S3_ENDPOINT": "127.0.0.1:9000", "VP_S3_SECURE": "maybe"}, "VP_S3_SECURE"},
		{"good", map[string]string{EnvTrackingURI: ok}, ""},
		{"good with a store", map[string]string{EnvTrackingURI: ok, "VP_S3_ENDPOINT": "127.0.0.1:9000", "VP_S3_ACCESS_KEY": "k", "VP_S3_SECRET_KEY": "s3-secret"}, ""},
		{"good with a path and a token", map[string]string{EnvTrackingURI: "https://mlflow.example/prefix/", EnvToken: "t0ken-secret"}, ""},
		{"good with basic auth", map[string]string{EnvTrackingURI: ok, EnvUsername: "me", EnvPassword: "hunter2-secret", EnvRegisterModels: "true"}, ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var logs bytes.Buffer
			f := New(WithLogger(zerolog.New(&logs).Level(zerolog.DebugLevel)))
			err := f.Start(context.Background(), tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Start() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Start() = %v, want an error naming %s", err, tc.want)
			}
			if tc.desc == "no tracking URI" && !errors.Is(err, ErrNoTrackingURI) {
				t.Errorf("Start() = %v, want ErrNoTrackingURI", err)
			}
			ready, _ := f.Ready(context.Background())
			if ready != (err == nil) {
				t.Errorf("Ready() = %v after Start() = %v", ready, err)
			}
			for _, secret := range []string{"hunter2-secret", "t0ken-secret", "s3-secret"} {
				if strings.Contains(logs.String(), secret) || (err != nil && strings.Contains(err.Error(), secret)) {
					t.Errorf("a secret was printed: logs %q, error %v", logs.String(), err)
				}
			}
		})
	}
}

// TestStartWithoutStore: without VP_S3_ENDPOINT the function starts, and
// says once that artifacts are not copied.
func TestStartWithoutStore(t *testing.T) {
	for _, tc := range []struct {
		desc string
		cfg  map[string]string
		want int // log lines naming VP_S3_ENDPOINT
	}{
		{"no endpoint", map[string]string{EnvTrackingURI: "http://127.0.0.1:5000"}, 1},
		{"an endpoint", map[string]string{EnvTrackingURI: "http://127.0.0.1:5000", "VP_S3_ENDPOINT": "127.0.0.1:9000"}, 0},
	} {
		var logs bytes.Buffer
		f := New(WithLogger(zerolog.New(&logs)))
		if err := f.Start(context.Background(), tc.cfg); err != nil {
			t.Fatalf("%s: Start() = %v", tc.desc, err)
		}
		if got := strings.Count(logs.String(), "VP_S3_ENDPOINT is not set"); got != tc.want {
			t.Errorf("%s: Start() logged %d lines saying VP_S3_ENDPOINT is not set, want %d:\n%s", tc.desc, got, tc.want, logs.String())
		}
		if got := (f.store != nil); got != (tc.want == 0) {
			t.Errorf("%s: Start() made a store: %v, want %v", tc.desc, got, tc.want == 0)
		}
	}
}

func TestCleanKey(t *testing.T) {
	for in, want := range map[string]string{
		"loss":              "loss",
		"val/acc":           "val/acc",
		"mAP50-95":          "mAP50-95",
		"top1 (%)":          "top1 ___",
		"/abs//path/./x/":   "abs/path/x",
		"../up":             "__/up",
		"":                  "_",
		"extra.momentum":    "extra.momentum",
		"vp_artifact.a/b.c": "vp_artifact.a/b.c",
		"é":                 "__",
	} {
		if got := cleanKey(in); got != want {
			t.Errorf("cleanKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWeights(t *testing.T) {
	a := func(name string) events.Artifact {
		return events.Artifact{Name: name, URI: "s3://runs/run-1/" + name, SHA256: strings.Repeat("a", 64)}
	}
	other := events.Artifact{Name: "weights/b.pt", URI: "s3://elsewhere/b.bin", SHA256: strings.Repeat("b", 64)}
	for _, tc := range []struct {
		desc            string
		arts            []events.Artifact
		name, uri, hash string
	}{
		{"none", []events.Artifact{a("metrics.json")}, "", "", ""},
		{"one file", []events.Artifact{a("metrics.json"), a("weights/model.pt")}, "weights/model.pt", "s3://runs/run-1/weights/model.pt", strings.Repeat("a", 64)},
		{"one file, unclean name", []events.Artifact{a("weights//model.pt")}, "weights/model.pt", "s3://runs/run-1/weights//model.pt", strings.Repeat("a", 64)},
		{"several: the folder", []events.Artifact{a("weights/b.pt"), a("weights/a.json")}, "weights/", "s3://runs/run-1/weights/", ""},
		{"nested", []events.Artifact{a("weights/x/model.bin"), a("weights/x/config.json")}, "weights/", "s3://runs/run-1/weights/", ""},
		{"several, not in one folder: the first", []events.Artifact{other, a("weights/c.pt")}, "weights/b.pt", other.URI, other.SHA256},
	} {
		name, uri, h := weights(tc.arts)
		if name != tc.name || uri != tc.uri || h != tc.hash {
			t.Errorf("%s: weights() = %q, %q, %q; want %q, %q, %q", tc.desc, name, uri, h, tc.name, tc.uri, tc.hash)
		}
	}
}

func TestArtifactPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // "" when refused
	}{
		{"metrics.json", "metrics.json"},
		{"weights/model.pt", "weights/model.pt"},
		{"weights//./model.pt", "weights/model.pt"},
		{"a/../b.txt", "b.txt"},
		{"../up.txt", ""},
		{"a/../../up.txt", ""},
		{"..", ""},
		{".", ""},
		{"/abs.txt", ""},
	} {
		got, ok := artifactPath(tc.name)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("artifactPath(%q) = %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestExperimentName(t *testing.T) {
	got := ExperimentName(events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/"})
	if got != "datasets/cats/v1" {
		t.Errorf("ExperimentName() = %q, want datasets/cats/v1", got)
	}
}

func TestStartedParams(t *testing.T) {
	d := &events.RunStartedData{Job: events.JobRequestedData{
		Model: events.ModelRef{Framework: "timm", Name: "resnet50"},
		Hyperparameters: events.Hyperparameters{Epochs: 3, BatchSize: 16, LearningRate: 0.001, Pretrained: true,
			Extra: map[string]any{"momentum": 0.9, "sched": "cosine", "aug": map[string]any{"flip": true}}},
	}}
	got, err := startedParams(d)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, p := range got {
		m[p.Key] = p.Value
	}
	want := map[string]string{
		"model": "timm/resnet50", "framework": "timm", "model_name": "resnet50",
		"epochs": "3", "batchSize": "16", "learningRate": "0.001", "pretrained": "true",
		"extra.momentum": "0.9", "extra.sched": "cosine", "extra.aug": `{"flip":true}`,
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("startedParams() (-want +got):\n%s", diff)
	}
}
