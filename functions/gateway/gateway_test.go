package gateway_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/funcyaml"
	"github.com/vision-platform/vp/functions/gateway"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/registry"
)

func TestFuncYAML(t *testing.T) {
	f, err := funcyaml.Parse("func.yaml", gateway.FuncYAML)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, s := range f.Deploy.Subscriptions {
		types = append(types, s.Filters["type"])
	}
	for _, typ := range events.Types() {
		want := typ != events.DatasetUploaded && typ != events.DatasetRejected
		if slices.Contains(types, string(typ)) != want {
			t.Errorf("func.yaml subscribes to %s: %v, want %v (the events of jobs)", typ, !want, want)
		}
	}
	for _, name := range gateway.Settings {
		if _, ok := f.Env(name); !ok && name != "VP_S3_SECURE" && !strings.HasPrefix(name, "VP_S3_") && name != "K_SINK" {
			t.Errorf("func.yaml does not set %s", name)
		}
	}
}

func TestInt_Gateway(t *testing.T) {
	testsupport.Integration(t)
	g := startGateway(t, gateway.WithLimits(func() gateway.Limits {
		l := gateway.DefaultLimits
		l.PartSize = 5 << 20
		l.MaxBody = 64 << 10
		return l
	}()))
	ctx := context.Background()
	cats := g.uploaded(t, "cats", "cats/", digestOf("a"), time.Now().Add(-time.Hour))

	t.Run("models", func(t *testing.T) {
		var all api.ModelList
		g.getJSON(t, "/api/v1/models/list", &all)
		if all.Count != len(registry.Default().Models()) || all.Total != all.Count || len(all.Models) != all.Count {
			t.Errorf("/models/list: count %d, total %d, %d models; want the whole catalog (%d)", all.Count, all.Total, len(all.Models), len(registry.Default().Models()))
		}
		var timm api.ModelList
		g.getJSON(t, "/api/v1/models?framework=timm&task=classification", &timm)
		want := registry.Default().Filter(registry.Query{Framework: "timm", Task: "classification"})
		if timm.Count != len(want) || timm.Count == 0 || timm.Facets.Frameworks["timm"] != timm.Count || len(timm.Facets.Frameworks) != 1 {
			t.Errorf("framework=timm: count %d, facets %v; want %d, all timm", timm.Count, timm.Facets.Frameworks, len(want))
		}
		var q api.ModelList
		g.getJSON(t, "/api/v1/models?q=RESNET18", &q)
		if !slices.ContainsFunc(q.Models, func(m registry.Model) bool { return m.Name == "resnet18" }) {
			t.Errorf("q=RESNET18 misses resnet18: %d models", q.Count)
		}
		var m registry.Model
		g.getJSON(t, "/api/v1/models/torchvision/resnet18", &m)
		if m.Name != "resnet18" || m.Status != registry.StatusReady {
			t.Errorf("GET torchvision/resnet18 = %+v", m)
		}
		code, b, _ := g.do(t, http.MethodGet, "/api/v1/models/timm/resnet9000", readToken, nil)
		if c, _ := errorBody(t, b); code != http.StatusNotFound || c != api.CodeNotFound {
			t.Errorf("unknown model = %d %s, want 404 not_found", code, b)
		}
		code, b, _ = g.do(t, http.MethodGet, "/api/v1/models?framwork=timm", readToken, nil)
		if _, field := errorBody(t, b); code != http.StatusBadRequest || field != "framwork" {
			t.Errorf("a misspelt filter = %d %s, want 400 naming it", code, b)
		}
		code, b, h := g.do(t, http.MethodDelete, "/api/v1/models", readToken, nil)
		if c, _ := errorBody(t, b); code != http.StatusMethodNotAllowed || c != api.CodeMethod || h.Get("Allow") != "GET, HEAD" {
			t.Errorf("DELETE /models = %d %s (Allow %q), want 405 with Allow: GET, HEAD", code, b, h.Get("Allow"))
		}
		code, b, _ = g.do(t, http.MethodGet, "/api/v1/nothing", readToken, nil)
		if c, _ := errorBody(t, b); code != http.StatusNotFound || c != api.CodeNotFound {
			t.Errorf("an unknown API route = %d %s, want 404 JSON", code, b)
		}
	})

	t.Run("auth", func(t *testing.T) {
		before := len(g.sink.OfType(string(events.JobRequested)))
		req := api.JobRequest{Model: "torchvision/resnet18", Dataset: api.DatasetSelector{Name: "cats"}}
		cases := []struct {
			desc, token string
			want        int
			code        string
		}{
			{"no token", "", http.StatusUnauthorized, api.CodeUnauthorized},
			{"wrong token", "not-a-token-of-this-gateway", http.StatusUnauthorized, api.CodeUnauthorized},
			{"read token on a write route", readToken, http.StatusForbidden, api.CodeForbidden},
		}
		for _, c := range cases {
			code, b, h := g.do(t, http.MethodPost, "/api/v1/jobs", c.token, req)
			if got, _ := errorBody(t, b); code != c.want || got != c.code {
				t.Errorf("%s: POST /jobs = %d %s, want %d %s", c.desc, code, b, c.want, c.code)
			}
			if c.want == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: no WWW-Authenticate: Bearer", c.desc)
			}
		}
		for _, path := range []string{"/api/v1/events", "/api/v1/datasets", "/api/v1/jobs/" + job(cats, "torchvision/resnet18", 1).ID + "/cancel"} {
			if code, _, _ := g.do(t, http.MethodPost, path, readToken, []byte(`{}`)); code != http.StatusForbidden {
				t.Errorf("POST %s with the read token = %d, want 403", path, code)
			}
		}
		code, _, _ := g.do(t, http.MethodGet, "/api/v1/jobs", "", nil)
		if code != http.StatusUnauthorized {
			t.Errorf("GET /jobs without a token = %d, want 401", code)
		}
		code, _, _ = g.do(t, http.MethodGet, "/api/v1/jobs", "Basic "+readToken, nil)
		if code != http.StatusUnauthorized {
			t.Errorf("GET /jobs with a token that is not ours = %d, want 401", code)
		}
		if code, _, _ := g.do(t, http.MethodGet, "/openapi.json", "", nil); code != http.StatusOK {
			t.Errorf("GET /openapi.json without a token = %d, want 200 (public)", code)
		}
		if after := len(g.sink.OfType(string(events.JobRequested))); after != before {
			t.Errorf("refused requests emitted %d events", after-before)
		}
	})

	var started events.JobRequestedData
	t.Run("jobs", func(t *testing.T) {
		req := api.JobRequest{Model: "torchvision/resnet18", Dataset: api.DatasetSelector{Name: "cats"},
			Hyperparameters: events.Hyperparameters{Epochs: 1, ImageSize: 32}}
		code, b, h := g.do(t, http.MethodPost, "/api/v1/jobs", writeToken, req, "Idempotency-Key", "retry-1")
		var acc api.JobAccepted
		if err := json.Unmarshal(b, &acc); code != http.StatusAccepted || err != nil || !acc.Created {
			t.Fatalf("POST /jobs = %d %s", code, b)
		}
		started = acc.Job
		m, _ := registry.Default().Lookup("torchvision", "resnet18")
		if acc.Job.Hyperparameters.BatchSize != m.Recommended.BatchSize || acc.Job.Hyperparameters.LearningRate != m.Recommended.LearningRate ||
			acc.Job.Hyperparameters.Epochs != 1 || acc.Job.Dataset != cats || acc.Job.RequestedBy != "gateway:writer" {
			t.Errorf("the job = %+v; want the catalog's batch size and learning rate, epochs 1, the cats dataset, requested by gateway:writer", acc.Job)
		}
		if h.Get("Location") != "/api/v1/jobs/"+acc.JobID || acc.JobID != events.JobID(cats.Digest, acc.Job.Model, acc.Job.Hyperparameters) {
			t.Errorf("Location %q, job id %s; want the deterministic id", h.Get("Location"), acc.JobID)
		}
		sent := g.sink.OfType(string(events.JobRequested))
		if len(sent) != 1 || sent[0].ID() != acc.JobID || sent[0].Source() != gateway.Source {
			t.Fatalf("the broker got %d job.requested, want one with id %s", len(sent), acc.JobID)
		}
		// A retry with the key starts nothing.
		code, b, _ = g.do(t, http.MethodPost, "/api/v1/jobs", writeToken, req, "Idempotency-Key", "retry-1")
		var again api.JobAccepted
		if err := json.Unmarshal(b, &again); code != http.StatusAccepted || err != nil || again.Created || again.JobID != acc.JobID {
			t.Errorf("a retry with the same key = %d %s, want 202, the same job, not created", code, b)
		}
		// The key with another request is refused.
		other := req
		other.Hyperparameters.Epochs = 2
		code, b, _ = g.do(t, http.MethodPost, "/api/v1/jobs", writeToken, other, "Idempotency-Key", "retry-1")
		if _, field := errorBody(t, b); code != http.StatusUnprocessableEntity || field != "Idempotency-Key" {
			t.Errorf("the key with another job = %d %s, want 422 naming Idempotency-Key", code, b)
		}
		// Once the ledger has the job, the same job without a key starts nothing either.
		g.record(t, sent[0])
		code, b, _ = g.do(t, http.MethodPost, "/api/v1/jobs", writeToken, req)
		if err := json.Unmarshal(b, &again); code != http.StatusAccepted || err != nil || again.Created || again.State != ledger.StateRequested {
			t.Errorf("the same job again = %d %s, want 202 not created, state requested", code, b)
		}
		if n := len(g.sink.OfType(string(events.JobRequested))); n != 1 {
			t.Errorf("the broker got %d job.requested after the retries, want 1", n)
		}

		bad := []struct {
			desc  string
			body  any
			code  int
			field string
		}{
			{"unknown model", api.JobRequest{Model: "timm/resnet9000", Dataset: api.DatasetSelector{Name: "cats"}}, 422, "model"},
			{"not framework/name", api.JobRequest{Model: "resnet18", Dataset: api.DatasetSelector{Name: "cats"}}, 422, "model"},
			{"unavailable model", api.JobRequest{Model: "ultralytics/yolov8n", Dataset: api.DatasetSelector{Name: "cats"}}, 422, "dataset"},
			{"unknown dataset", api.JobRequest{Model: "torchvision/resnet18", Dataset: api.DatasetSelector{Name: "dogs"}}, 422, "dataset.name"},
			{"no dataset", api.JobRequest{Model: "torchvision/resnet18"}, 422, "dataset"},
			{"a dataset given whole without its task", api.JobRequest{Model: "torchvision/resnet18",
				Dataset: api.DatasetSelector{Bucket: "datasets", Prefix: "elsewhere/", Digest: digestOf("b"), Format: "imagefolder"}}, 422, "dataset.task"},
			{"bad digest", api.JobRequest{Model: "torchvision/resnet18", Dataset: api.DatasetSelector{Name: "cats", Digest: "md5:x"}}, 422, "dataset.digest"},
			{"negative epochs", api.JobRequest{Model: "torchvision/resnet18", Dataset: api.DatasetSelector{Name: "cats"}, Hyperparameters: events.Hyperparameters{Epochs: -1}}, 422, "hyperparameters.epochs"},
			{"unknown field", []byte(`{"model":"torchvision/resnet18","dataset":{"name":"cats"},"gpu":1}`), 400, "gpu"},
			{"wrong type", []byte(`{"model":"torchvision/resnet18","dataset":{"name":"cats"},"hyperparameters":{"epochs":"two"}}`), 400, "hyperparameters.epochs"},
			{"not JSON", []byte(`{"model":`), 400, "body"},
			{"empty", []byte(` `), 400, "body"},
			{"too large", []byte(`{"requestedBy":"` + strings.Repeat("x", 70<<10) + `"}`), 413, ""},
		}
		for _, c := range bad {
			code, b, _ := g.do(t, http.MethodPost, "/api/v1/jobs", writeToken, c.body)
			if _, field := errorBody(t, b); code != c.code || field != c.field {
				t.Errorf("%s: POST /jobs = %d %s, want %d naming %q", c.desc, code, b, c.code, c.field)
			}
		}
		// A dataset the ledger does not know, given whole, is taken.
		whole := api.JobRequest{Model: "torchvision/resnet18", Dataset: api.DatasetSelector{Bucket: "datasets", Prefix: "elsewhere", Digest: digestOf("c"), Task: "classification", Format: "imagefolder"}}
		if code, b, _ := g.do(t, http.MethodPost, "/api/v1/jobs", writeToken, whole); code != http.StatusAccepted || !strings.Contains(string(b), `"prefix":"elsewhere/"`) {
			t.Errorf("a dataset given whole = %d %s, want 202 with its prefix ending in /", code, b)
		}
		if n := len(g.sink.OfType(string(events.JobRequested))); n != 2 {
			t.Errorf("the broker got %d job.requested, want 2: the refused ones emitted nothing", n)
		}
	})

	t.Run("listing", func(t *testing.T) {
		// Five more jobs, a minute apart, on two datasets and two models.
		dogs := g.uploaded(t, "dogs", "dogs/v2/", digestOf("d"), time.Now().Add(-time.Hour))
		base := time.Now().Add(-30 * time.Minute)
		var ids []string
		for i := range 5 {
			ref, model := cats, "torchvision/resnet18"
			if i%2 == 1 {
				ref, model = dogs, "timm/resnet50"
			}
			j := job(ref, model, 10+i)
			g.record(t, mustEvent(t, j, events.WithTime(base.Add(time.Duration(i)*time.Minute))))
			ids = append(ids, j.ID)
		}
		// The newest finished.
		g.record(t, mustEvent(t, events.RunFinishedData{Job: ids[4], RunID: "run-4", Status: events.StatusSucceeded, DurationSeconds: 3}, events.WithTime(base.Add(10*time.Minute))))
		var seen []string
		cursor := ""
		for page := 0; page < 10; page++ {
			var l api.JobList
			path := "/api/v1/jobs?limit=2"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			g.getJSON(t, path, &l)
			if len(l.Jobs) > 2 {
				t.Fatalf("a page of limit 2 has %d jobs", len(l.Jobs))
			}
			for _, j := range l.Jobs {
				seen = append(seen, j.JobID)
			}
			if l.NextCursor == "" {
				break
			}
			cursor = l.NextCursor
		}
		// The one from the jobs subtest (created now) is the newest.
		want := append([]string{started.ID}, ids[4], ids[3], ids[2], ids[1], ids[0])
		if diff := cmp.Diff(want, seen); diff != "" {
			t.Errorf("pages of 2, newest first (-want +got):\n%s", diff)
		}
		filters := []struct {
			query string
			want  []string
		}{
			{"state=succeeded", []string{ids[4]}},
			{"model=timm/resnet50", []string{ids[3], ids[1]}},
			{"dataset=dogs", []string{ids[3], ids[1]}},
			{"dataset=" + digestOf("d"), []string{ids[3], ids[1]}},
			{"dataset=datasets/dogs/v2&state=requested", []string{ids[3], ids[1]}},
		}
		for _, f := range filters {
			var l api.JobList
			g.getJSON(t, "/api/v1/jobs?"+f.query, &l)
			var got []string
			for _, j := range l.Jobs {
				got = append(got, j.JobID)
			}
			if diff := cmp.Diff(f.want, got); diff != "" {
				t.Errorf("?%s (-want +got):\n%s", f.query, diff)
			}
		}
		for _, q := range []string{"limit=0", "limit=501", "limit=x", "limit=", "cursor=not-one", "cursor=", "state=done", "state=", "sort=asc"} {
			if code, b, _ := g.do(t, http.MethodGet, "/api/v1/jobs?"+q, readToken, nil); code != http.StatusBadRequest {
				t.Errorf("?%s = %d %s, want 400", q, code, b)
			}
		}
	})

	t.Run("job, progress, cancel, artifacts", func(t *testing.T) {
		j := job(cats, "torchvision/resnet18", 3)
		t0 := time.Now().Add(-time.Minute)
		built := events.ImageBuiltData{Job: j.ID, Request: j, Framework: "torchvision-cpu", Reference: "127.0.0.1:5000/vp/torchvision-cpu@" + digestOf("e"),
			Layers: []events.Layer{{Digest: digestOf("1"), Size: 100}}}
		run := events.RunStartedData{Job: j, RunID: "run-x", Image: built.Reference, Executor: "process", Output: "s3://runs/run-x/"}
		for i, e := range []event.Event{
			mustEvent(t, j, events.WithTime(t0)),
			mustEvent(t, built, events.WithTime(t0.Add(time.Second))),
			mustEvent(t, run, events.WithTime(t0.Add(2*time.Second))),
			mustEvent(t, events.RunProgressData{Job: j.ID, RunID: "run-x", Epoch: 2, Step: 20, Metrics: map[string]float64{"loss": 0.5}, Time: t0.Add(4 * time.Second)}, events.WithTime(t0.Add(4*time.Second))),
			mustEvent(t, events.RunProgressData{Job: j.ID, RunID: "run-x", Epoch: 1, Step: 10, Metrics: map[string]float64{"loss": 0.9}, Time: t0.Add(3 * time.Second)}, events.WithTime(t0.Add(3*time.Second))),
		} {
			_ = i
			g.record(t, e)
		}
		var s ledger.JobStatus
		g.getJSON(t, "/api/v1/jobs/"+j.ID, &s)
		var types []string
		for _, e := range s.Timeline {
			types = append(types, events.Type(e.Type).Short())
		}
		if s.State != ledger.StateRunning || !slices.Equal(types, []string{"job.requested", "image.built", "run.started"}) {
			t.Errorf("GET /jobs/%s = %s, timeline %v", j.ID, s.State, types)
		}
		var p api.Progress
		g.getJSON(t, "/api/v1/jobs/"+j.ID+"/progress", &p)
		if len(p.Points) != 2 || p.Points[0].Step != 10 || p.Points[1].Metrics["loss"] != 0.5 {
			t.Errorf("progress = %+v, want steps 10 and 20", p.Points)
		}
		for _, path := range []string{"/api/v1/jobs/job-00000000000000000000", "/api/v1/jobs/nope", "/api/v1/jobs/job-00000000000000000000/progress"} {
			code, b, _ := g.do(t, http.MethodGet, path, readToken, nil)
			if c, _ := errorBody(t, b); code != http.StatusNotFound || c != api.CodeNotFound {
				t.Errorf("GET %s = %d %s, want 404", path, code, b)
			}
		}
		// Cancel: job.cancelled emitted; a second cancel is the same event.
		code, b, _ := g.do(t, http.MethodPost, "/api/v1/jobs/"+j.ID+"/cancel", writeToken, api.CancelRequest{Reason: "enough"})
		var ca api.CancelAccepted
		if err := json.Unmarshal(b, &ca); code != http.StatusAccepted || err != nil || ca.State != ledger.StateCancelling {
			t.Fatalf("cancel = %d %s", code, b)
		}
		code, _, _ = g.do(t, http.MethodPost, "/api/v1/jobs/"+j.ID+"/cancel", writeToken, nil)
		cancels := g.sink.OfType(string(events.JobCancelled))
		if code != http.StatusAccepted || len(cancels) != 2 || cancels[0].ID() != cancels[1].ID() || cancels[0].ID() != ca.EventID {
			t.Errorf("two cancels = %d, %d events; want the same deterministic event twice", code, len(cancels))
		}
		var cd events.JobCancelledData
		if err := events.DecodeInto(cancels[0], &cd); err != nil || cd.Reason != "enough" || cd.RequestedBy != "gateway:writer" {
			t.Errorf("job.cancelled = %+v, %v", cd, err)
		}
		// The run ends with an artifact in the store.
		content := []byte("weights of a tiny model")
		sum := sha256.Sum256(content)
		if _, err := g.minio.Client.PutObject(ctx, "platform", "runs/run-x/weights/model.pt", strings.NewReader(string(content)), int64(len(content)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		g.record(t, mustEvent(t, events.RunFinishedData{Job: j.ID, RunID: "run-x", Status: events.StatusCancelled, Reason: "enough",
			Artifacts:       []events.Artifact{{Name: "weights/model.pt", URI: "s3://platform/runs/run-x/weights/model.pt", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}},
			DurationSeconds: 5}, events.WithTime(t0.Add(10*time.Second))))
		time.Sleep(1100 * time.Millisecond) // past the status cache
		var arts api.Artifacts
		g.getJSON(t, "/api/v1/jobs/"+j.ID+"/artifacts", &arts)
		if len(arts.Artifacts) != 1 {
			t.Fatalf("artifacts = %+v", arts)
		}
		resp, err := http.Get(arts.Artifacts[0].URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || string(got) != string(content) {
			t.Errorf("GET the presigned artifact URL = %d %q, %v", resp.StatusCode, got, err)
		}
		code, b, _ = g.do(t, http.MethodPost, "/api/v1/jobs/"+j.ID+"/cancel", writeToken, nil)
		if c, _ := errorBody(t, b); code != http.StatusConflict || c != api.CodeConflict {
			t.Errorf("cancelling a finished job = %d %s, want 409", code, b)
		}
	})

	t.Run("stream", func(t *testing.T) {
		j := job(cats, "torchvision/resnet18", 4)
		t0 := time.Now().Add(-time.Minute)
		req := mustEvent(t, j, events.WithTime(t0))
		g.record(t, req)
		st := openStream(t, g, j.ID, "")
		if e := st.next(t); e.event != "job.requested" || e.ce.ID() != req.ID() {
			t.Fatalf("first stream event = %+v, want the job.requested from the ledger", e)
		}
		// Live: delivered by the broker, not in the ledger.
		run := events.RunStartedData{Job: j, RunID: "run-s", Image: "img@" + digestOf("f"), Executor: "process", Output: "s3://runs/run-s/"}
		started := mustEvent(t, run, events.WithTime(t0.Add(time.Second)))
		g.deliver(t, started)
		e := st.next(t)
		if e.event != "run.started" || e.ce.ID() != started.ID() {
			t.Fatalf("live event = %+v, want run.started", e)
		}
		resumeFrom := e.id
		prog := mustEvent(t, events.RunProgressData{Job: j.ID, RunID: "run-s", Epoch: 1, Step: 5, Metrics: map[string]float64{"loss": 1}, Time: t0.Add(2 * time.Second)}, events.WithTime(t0.Add(2*time.Second)))
		g.deliver(t, prog)
		if e := st.next(t); e.event != "run.progress" {
			t.Fatalf("live event = %+v, want run.progress", e)
		}
		st.close()
		// The run-recorder records them; a client resuming after
		// run.started gets the progress, then the ending live, then end.
		g.record(t, started)
		g.record(t, prog)
		st = openStream(t, g, j.ID, resumeFrom)
		if e := st.next(t); e.event != "run.progress" || e.ce.ID() != prog.ID() {
			t.Fatalf("after Last-Event-ID: %+v, want the run.progress only", e)
		}
		fin := mustEvent(t, events.RunFinishedData{Job: j.ID, RunID: "run-s", Status: events.StatusSucceeded, DurationSeconds: 2}, events.WithTime(t0.Add(3*time.Second)))
		g.deliver(t, fin)
		if e := st.next(t); e.event != "run.finished" {
			t.Fatalf("live event = %+v, want run.finished", e)
		}
		if e := st.next(t); e.event != "end" {
			t.Fatalf("after run.finished: %+v, want end", e)
		}
		st.close()
		// A finished job's stream is its history and end.
		g.record(t, fin)
		st = openStream(t, g, j.ID, "")
		var got []string
		for e := st.next(t); e.event != "end"; e = st.next(t) {
			got = append(got, e.event)
		}
		st.close()
		if want := []string{"job.requested", "run.started", "run.progress", "run.finished"}; !slices.Equal(got, want) {
			t.Errorf("a finished job's stream = %v, want %v then end", got, want)
		}
		for _, c := range []struct {
			path, last string
			code       int
		}{
			{"/api/v1/jobs/job-00000000000000000000/events", "", http.StatusNotFound},
			{"/api/v1/jobs/" + j.ID + "/events?lastEventId=garbage", "", http.StatusOK}, // an id it did not give: from the start
		} {
			code, b, _ := g.do(t, http.MethodGet, c.path, readToken, nil, "Last-Event-ID", c.last)
			if code != c.code {
				t.Errorf("GET %s (Last-Event-ID %q) = %d %s, want %d", c.path, c.last, code, b, c.code)
			}
		}
	})

	t.Run("stream of events delivered, not yet recorded", func(t *testing.T) {
		j := job(cats, "torchvision/resnet18", 9)
		req := mustEvent(t, j)
		g.deliver(t, req)
		st := openStream(t, g, j.ID, "")
		defer st.close()
		if e := st.next(t); e.event != "job.requested" || e.ce.ID() != req.ID() {
			t.Errorf("a stream opened after a delivery the ledger lacks = %+v, want the job.requested", e)
		}
	})

	t.Run("events", func(t *testing.T) {
		before := len(g.sink.OfType(string(events.JobRequested)))
		j := job(cats, "torchvision/resnet18", 7)
		e := mustEvent(t, j)
		// Structured.
		b, _ := json.Marshal(e)
		code, body, _ := g.do(t, http.MethodPost, "/api/v1/events", writeToken, b, "Content-Type", "application/cloudevents+json")
		if code != http.StatusAccepted || !strings.Contains(string(body), e.ID()) {
			t.Errorf("structured job.requested = %d %s, want 202", code, body)
		}
		// Binary, a type of another system.
		other := event.New()
		other.SetID("o-1")
		other.SetSource("//other.example")
		other.SetType("com.example.hello")
		if err := other.SetData("application/json", map[string]string{"hi": "there"}); err != nil {
			t.Fatal(err)
		}
		code, body, _ = g.do(t, http.MethodPost, "/api/v1/events", writeToken, []byte(`{"hi":"there"}`),
			"Content-Type", "application/json", "Ce-Specversion", "1.0", "Ce-Id", "o-1", "Ce-Source", "//other.example", "Ce-Type", "com.example.hello")
		if code != http.StatusAccepted || len(g.sink.OfType("com.example.hello")) != 1 {
			t.Errorf("binary com.example.hello = %d %s, want 202 and forwarded", code, body)
		}
		// Batch with one bad event: nothing forwarded, the bad one named.
		bad := j
		bad.Model.Name = "resnet9000"
		bad.ID = events.JobID(bad.Dataset.Digest, bad.Model, bad.Hyperparameters)
		eb := mustEvent(t, bad)
		batch, _ := json.Marshal([]event.Event{e, eb})
		code, body, _ = g.do(t, http.MethodPost, "/api/v1/events", writeToken, batch, "Content-Type", "application/cloudevents-batch+json")
		if _, field := errorBody(t, body); code != http.StatusUnprocessableEntity || field != "[1].data.model.name" {
			t.Errorf("a batch with an unknown model = %d %s, want 422 naming [1].data.model.name", code, body)
		}
		// A platform type with a bad payload.
		code, body, _ = g.do(t, http.MethodPost, "/api/v1/events", writeToken, []byte(`{"x":1}`),
			"Content-Type", "application/json", "Ce-Specversion", "1.0", "Ce-Id", "p-1", "Ce-Source", "/x", "Ce-Type", string(events.RunProgress))
		if code != http.StatusUnprocessableEntity {
			t.Errorf("a run.progress with a bad payload = %d %s, want 422", code, body)
		}
		// Attributes the broker could not carry, and null ones.
		code, body, _ = g.do(t, http.MethodPost, "/api/v1/events", writeToken, []byte(`{"specversion":"1.0","id":" x","source":"/x","type":"com.example.x"}`), "Content-Type", "application/cloudevents+json")
		if _, field := errorBody(t, body); code != http.StatusBadRequest || field != "id" {
			t.Errorf("an id with a leading blank = %d %s, want 400 naming id", code, body)
		}
		code, body, _ = g.do(t, http.MethodPost, "/api/v1/events", writeToken, []byte(`[{"specversion":"1.0","id":"x","source":"/x","type":"com.example.x","time":null}]`), "Content-Type", "application/cloudevents-batch+json")
		if _, field := errorBody(t, body); code != http.StatusBadRequest || field != "[0].time" {
			t.Errorf("a null time = %d %s, want 400 naming [0].time", code, body)
		}
		code, body, _ = g.do(t, http.MethodPost, "/api/v1/events", writeToken, []byte(`{"x":1}`), "Content-Type", "application/json")
		if _, field := errorBody(t, body); code != http.StatusBadRequest || field != "specversion" {
			t.Errorf("not a CloudEvent = %d %s, want 400 naming specversion", code, body)
		}
		if n := len(g.sink.OfType(string(events.JobRequested))) - before; n != 1 {
			t.Errorf("the broker got %d job.requested from /events, want 1 (the good structured one)", n)
		}
	})

	t.Run("images", func(t *testing.T) {
		shared := events.Layer{Digest: digestOf("9"), Size: 1000}
		for i, fw := range []string{"timm", "huggingface"} {
			j := job(cats, fw+"/x", 1+i)
			own := events.Layer{Digest: digestOf(fmt.Sprint(i + 2)), Size: int64(10 * (i + 1))}
			b := events.ImageBuiltData{Job: j.ID, Request: j, Framework: fw, Reference: "reg/vp/" + fw + "@" + digestOf(fmt.Sprint(i+5)), Layers: []events.Layer{shared, own}}
			g.record(t, mustEvent(t, b))
		}
		time.Sleep(1100 * time.Millisecond) // past the job list cache
		var imgs api.Images
		g.getJSON(t, "/api/v1/images", &imgs)
		byFW := map[string]api.Image{}
		for _, im := range imgs.Images {
			byFW[im.Framework] = im
		}
		if im := byFW["timm"]; im.Bytes != 1010 || im.SharedBytes != 1000 || len(im.Layers) != 2 || !slices.Equal(im.Layers[0].SharedWith, []string{"huggingface"}) {
			t.Errorf("timm image = %+v, want 1010 bytes of which 1000 shared with huggingface", im)
		}
		if byFW["huggingface"].SharedBytes != 1000 || imgs.StoredBytes < 1030 || imgs.StoredBytes > imgs.Bytes {
			t.Errorf("images = %+v", imgs)
		}
	})

	t.Run("console", func(t *testing.T) {
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		get := func(path string, cookie *http.Cookie) (*http.Response, string) {
			req, err := http.NewRequest(http.MethodGet, g.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if cookie != nil {
				req.AddCookie(cookie)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return resp, string(b)
		}
		login := func(tok, next string) *http.Response {
			resp, err := noRedirect.PostForm(g.URL+"/login", map[string][]string{"token": {tok}, "next": {next}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		if resp, _ := get("/models?framework=timm", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fmodels%3Fframework%3Dtimm" {
			t.Errorf("a page without signing in = %d to %q, want 303 to the login page", resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp := login("wrong-token-0123456789", "/models"); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
			t.Errorf("signing in with a wrong token = %d, cookies %v", resp.StatusCode, resp.Cookies())
		}
		resp := login(readToken, "//evil.example/")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/models" || len(resp.Cookies()) != 1 {
			t.Fatalf("signing in = %d to %q, cookies %v; want 303 to /models (not elsewhere) with a cookie", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
		}
		read := resp.Cookies()[0]
		if !read.HttpOnly || read.SameSite != http.SameSiteStrictMode {
			t.Errorf("the console's cookie = %+v, want HttpOnly and SameSite=Strict", read)
		}
		page, body := get("/models?framework=timm", read)
		timm := registry.Default().Filter(registry.Query{Framework: "timm"})
		if page.StatusCode != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") || !strings.Contains(page.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Fatalf("GET /models = %d %s, CSP %q", page.StatusCode, page.Header.Get("Content-Type"), page.Header.Get("Content-Security-Policy"))
		}
		if want := fmt.Sprintf("<strong data-count>%d</strong> of %d models", len(timm), len(registry.Default().Models())); !strings.Contains(body, want) {
			t.Errorf("the models page lacks %q", want)
		}
		if strings.Count(body, `class="card"`) != len(registry.Default().Models()) || strings.Count(body, " hidden>") < len(registry.Default().Models())-len(timm) {
			t.Errorf("the models page has %d cards, %d hidden; want every model, all but timm's hidden", strings.Count(body, `class="card"`), strings.Count(body, " hidden>"))
		}
		if strings.Contains(body, "Train on a dataset") {
			t.Error("a read-only token sees the train button")
		}
		for _, path := range []string{"/jobs", "/jobs/" + started.ID, "/compare", "/compare?job=" + started.ID + "&job=" + started.ID, "/datasets", "/images", "/static/console.js", "/static/console.css"} {
			if resp, body := get(path, read); resp.StatusCode != http.StatusOK || len(body) == 0 {
				t.Errorf("GET %s = %d", path, resp.StatusCode)
			}
		}
		if resp, _ := get("/jobs/job-00000000000000000000", read); resp.StatusCode != http.StatusNotFound {
			t.Errorf("an unknown job's page = %d, want 404", resp.StatusCode)
		}
		write := login(writeToken, "/models").Cookies()[0]
		if _, body := get("/models", write); !strings.Contains(body, "Train on a dataset") || !strings.Contains(body, `value="datasets|cats/"`) {
			t.Error("the write token's models page lacks the train button or the cats dataset")
		}
		post := func(hdr string) int {
			req, err := http.NewRequest(http.MethodPost, g.URL+"/api/v1/jobs", strings.NewReader(`{"model":"timm/nope","dataset":{"name":"cats"}}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.AddCookie(write)
			if hdr != "" {
				req.Header.Set("X-VP-Console", hdr)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := post(""); code != http.StatusForbidden {
			t.Errorf("a write with the cookie and without the console's header = %d, want 403", code)
		}
		if code := post("1"); code != http.StatusUnprocessableEntity {
			t.Errorf("a write with the cookie and the console's header = %d, want 422 (past auth, refused by the catalog)", code)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		n, err := testutil.GatherAndCount(g.reg, "vp_gateway_requests_total")
		if err != nil || n == 0 {
			t.Errorf("vp_gateway_requests_total: %d series, %v", n, err)
		}
	})
}

// sseEvent is one event of a stream.
type sseEvent struct {
	id, event string
	ce        event.Event
}

type stream struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

func openStream(t *testing.T, g *testGateway, job, last string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+"/api/v1/jobs/"+job+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+readToken)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET events = %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &stream{resp: resp, events: make(chan sseEvent, 64), cancel: cancel}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var cur sseEvent
		var data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.event != "" {
					if cur.event != "end" {
						_ = json.Unmarshal([]byte(data), &cur.ce)
					}
					s.events <- cur
				}
				cur, data = sseEvent{}, ""
			case strings.HasPrefix(line, "id: "):
				cur.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				cur.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

func (s *stream) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no stream event within 10 s")
	}
	return sseEvent{}
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// TestInt_StreamCatchesUp: a stream whose live deliveries are lost (here,
// never made) gets the job's events from the ledger once it has been idle
// for a heartbeat, and ends with the job.
func TestInt_StreamCatchesUp(t *testing.T) {
	testsupport.Integration(t)
	lim := gateway.DefaultLimits
	lim.Heartbeat = 200 * time.Millisecond
	g := startGateway(t, gateway.WithLimits(lim))
	cats := g.uploaded(t, "cats", "cats/", digestOf("a"), time.Now().Add(-time.Hour))
	j := job(cats, "torchvision/resnet18", 2)
	t0 := time.Now().Add(-time.Minute)
	g.record(t, mustEvent(t, j, events.WithTime(t0)))
	st := openStream(t, g, j.ID, "")
	defer st.close()
	if e := st.next(t); e.event != "job.requested" {
		t.Fatalf("first event = %+v", e)
	}
	run := events.RunStartedData{Job: j, RunID: "run-c", Image: "img@" + digestOf("f"), Executor: "process", Output: "s3://runs/run-c/"}
	g.record(t, mustEvent(t, run, events.WithTime(t0.Add(time.Second))))
	g.record(t, mustEvent(t, events.RunFinishedData{Job: j.ID, RunID: "run-c", Status: events.StatusSucceeded, DurationSeconds: 1}, events.WithTime(t0.Add(2*time.Second))))
	var got []string
	for e := st.next(t); e.event != "end"; e = st.next(t) {
		got = append(got, e.event)
	}
	if want := []string{"run.started", "run.finished"}; !slices.Equal(got, want) {
		t.Errorf("caught up %v, want %v then end", got, want)
	}
}
