package events

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
)

const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func dataset() DatasetUploadedData {
	return DatasetUploadedData{
		DatasetRef: DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: digestA, Task: TaskClassification, Format: FormatImageFolder},
		Name:       "cats", Manifest: "cats/v1/dataset.yaml", VersionID: "v-1", Files: 10, Bytes: 1000,
	}
}

func job() JobRequestedData {
	d := dataset()
	j := JobRequestedData{
		Dataset:         d.DatasetRef,
		Model:           ModelRef{Framework: "timm", Name: "resnet18"},
		Hyperparameters: Hyperparameters{Epochs: 2, BatchSize: 8, LearningRate: 0.01, Extra: map[string]any{"b": 1.0, "a": "x"}},
	}
	j.ID = JobID(j.Dataset.Digest, j.Model, j.Hyperparameters)
	return j
}

func fieldNames(t *testing.T, err error) []string {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	var out []string
	for _, f := range ve.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestNewSetsEverything(t *testing.T) {
	ctx := ContextWithTraceparent(context.Background(), "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")
	j := job()
	e, err := New(ctx, "/test", j)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	if e.ID() != j.ID || e.Subject() != j.ID || e.Type() != string(JobRequested) {
		t.Errorf("New() id, subject, type = %q, %q, %q; want %q, %q, %q", e.ID(), e.Subject(), e.Type(), j.ID, j.ID, JobRequested)
	}
	if e.DataSchema() != JobRequested.SchemaURI() || e.DataContentType() != ContentType || e.Time().IsZero() {
		t.Errorf("New() dataschema %q, datacontenttype %q, time %v", e.DataSchema(), e.DataContentType(), e.Time())
	}
	if got := e.Extensions()[ExtJobID]; got != j.ID {
		t.Errorf("jobid = %v, want %s", got, j.ID)
	}
	tp, _ := e.Extensions()[ExtTraceparent].(string)
	if !strings.HasPrefix(tp, "00-0123456789abcdef0123456789abcdef-") || strings.Contains(tp, "-0123456789abcdef-") {
		t.Errorf("traceparent = %q, want same trace id and a new span id", tp)
	}
	back, err := Decode(e)
	if err != nil {
		t.Fatalf("Decode() = %v", err)
	}
	if diff := cmp.Diff(&j, back); diff != "" {
		t.Errorf("Decode() round trip (-want +got):\n%s", diff)
	}
}

func TestNextContinuesJobAndTrace(t *testing.T) {
	in, err := New(context.Background(), "/a", job())
	if err != nil {
		t.Fatal(err)
	}
	out, err := Next(in, "/b", ImageFailedData{Job: job().ID, Framework: "timm", Reason: "NoSpec", Message: "x"})
	if err != nil {
		t.Fatal(err)
	}
	inTP := in.Extensions()[ExtTraceparent].(string)
	outTP := out.Extensions()[ExtTraceparent].(string)
	if inTP[3:35] != outTP[3:35] || inTP == outTP {
		t.Errorf("Next traceparent = %q from %q: want same trace, new span", outTP, inTP)
	}
	if out.ID() == "" || out.ID() == in.ID() {
		t.Errorf("Next id = %q", out.ID())
	}
}

func TestDeterministicIDs(t *testing.T) {
	a, b := dataset(), dataset()
	if a.DeterministicID() != b.DeterministicID() {
		t.Errorf("same object version gave ids %q and %q", a.DeterministicID(), b.DeterministicID())
	}
	b.VersionID = "v-2"
	if a.DeterministicID() == b.DeterministicID() {
		t.Errorf("different object versions gave the same id %q", a.DeterministicID())
	}
	j1, j2 := job(), job()
	// Another system writes the same hyperparameters with its keys in
	// another order, other spacing and other number spellings: same job.
	var hp1, hp2 Hyperparameters
	for doc, hp := range map[string]*Hyperparameters{
		`{"epochs":2,"batchSize":8,"learningRate":0.01,"extra":{"b":1,"a":{"y":[1,2],"x":"s"}}}`:                                     &hp1,
		`{ "extra" : { "a" : { "x" : "s", "y" : [ 1.0, 2e0 ] }, "b" : 1.0 }, "learningRate" : 1e-2, "batchSize" : 8, "epochs" : 2 }`: &hp2,
	} {
		if err := json.Unmarshal([]byte(doc), hp); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := JobID(j1.Dataset.Digest, j1.Model, hp1), JobID(j1.Dataset.Digest, j1.Model, hp2); a != b {
		t.Errorf("JobID of the same hyperparameters written two ways = %s and %s", a, b)
	}
	hp2.Extra["b"] = 2.0
	if JobID(j1.Dataset.Digest, j1.Model, hp1) == JobID(j1.Dataset.Digest, j1.Model, hp2) {
		t.Error("JobID ignores extra settings")
	}
	j2.Hyperparameters.Epochs = 3
	if JobID(j1.Dataset.Digest, j1.Model, j1.Hyperparameters) == JobID(j2.Dataset.Digest, j2.Model, j2.Hyperparameters) {
		t.Error("JobID ignores epochs")
	}
	j2 = job()
	j2.Model.Name = "resnet50"
	if JobID(j1.Dataset.Digest, j1.Model, j1.Hyperparameters) == JobID(j2.Dataset.Digest, j2.Model, j2.Hyperparameters) {
		t.Error("JobID ignores the model")
	}
}

func TestValidateNamesEveryBadField(t *testing.T) {
	mk := func(typ Type, data string, mut func(*event.Event)) event.Event {
		e := event.New()
		e.SetID("1")
		e.SetSource("/t")
		e.SetType(string(typ))
		if err := e.SetData(ContentType, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if mut != nil {
			mut(&e)
		}
		return e
	}
	good := func() string {
		e, err := New(context.Background(), "/t", dataset())
		if err != nil {
			t.Fatal(err)
		}
		return string(e.Data())
	}()
	cases := []struct {
		desc string
		e    event.Event
		want []string
	}{{
		desc: "every bad dataset field",
		e:    mk(DatasetUploaded, `{"bucket":"B!","prefix":"","digest":"md5:1","task":"x","format":"","name":"","manifest":"","files":0,"bytes":-1}`, nil),
		want: []string{"data.bucket", "data.bytes", "data.digest", "data.files", "data.format", "data.manifest", "data.name", "data.prefix", "data.task"},
	}, {
		desc: "unknown payload field",
		e:    mk(DatasetUploaded, strings.Replace(good, `{`, `{"extra":1,`, 1), nil),
		want: []string{"data.extra"},
	}, {
		desc: "wrong JSON type",
		e:    mk(DatasetUploaded, strings.Replace(good, `"files":10`, `"files":"ten"`, 1), nil),
		want: []string{"data.files"},
	}, {
		desc: "bad context attributes",
		e: mk(DatasetUploaded, good, func(e *event.Event) {
			e.SetID("")
			e.SetDataContentType("text/plain")
			e.SetExtension(ExtTraceparent, "nope")
		}),
		want: []string{"datacontenttype", "id", "traceparent"},
	}, {
		desc: "unknown type with our prefix",
		e:    mk(Type(Prefix+"nope"), good, nil),
		want: []string{"type"},
	}, {
		desc: "job id not matching its inputs, jobid extension missing",
		e: func() event.Event {
			j := job()
			j.Hyperparameters.Epochs = 99
			return mk(JobRequested, mustJSON(j), nil)
		}(),
		want: []string{"data.jobId", "jobid"},
	}, {
		desc: "nested job fields",
		e:    mk(RunFinished, `{"jobId":"x","runId":"","status":"failed","durationSeconds":-1,"artifacts":[{"name":"","uri":"http://x","sha256":"z","size":1}]}`, nil),
		want: []string{"data.artifacts[0].name", "data.artifacts[0].sha256", "data.artifacts[0].uri", "data.durationSeconds", "data.jobId", "data.reason", "data.runId", "jobid"},
	}}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			got := fieldNames(t, Validate(c.e))
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Validate() fields (-want +got):\n%s\nerror: %v", diff, Validate(c.e))
			}
		})
	}
}

func TestValidateAcceptsForeignTypes(t *testing.T) {
	e := event.New()
	e.SetID("1")
	e.SetSource("/elsewhere")
	e.SetType("com.example.thing")
	if err := Validate(e); err != nil {
		t.Errorf("Validate(foreign event) = %v, want nil", err)
	}
}

func TestChildTraceparent(t *testing.T) {
	root := ChildTraceparent("")
	if !ValidTraceparent(root) {
		t.Fatalf("ChildTraceparent(\"\") = %q, not valid", root)
	}
	a, b := ChildTraceparent("garbage"), ChildTraceparent("garbage")
	if a[3:35] == b[3:35] {
		t.Error("two new traces share a trace id")
	}
	child := ChildTraceparent(root)
	if child[3:35] != root[3:35] || child[36:52] == root[36:52] {
		t.Errorf("ChildTraceparent(%q) = %q", root, child)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
