package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/gateway"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

const (
	writeToken = "write-token-0123456789"
	readToken  = "read-token-0123456789"
)

// testGateway is a gateway on a real MinIO, posting its events to a sink
// that records them (the broker's ingress stands in).
type testGateway struct {
	URL    string
	f      *gateway.Function
	sink   *testsupport.Sink
	minio  *testsupport.MinIO
	store  *objstore.MinIO
	ledger *ledger.Ledger
	reg    *prometheus.Registry
}

func startGateway(t *testing.T, opts ...gateway.Option) *testGateway {
	t.Helper()
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	m.Bucket(t, "platform")
	g := &testGateway{minio: m, store: objstore.FromMinIO(m.Client), reg: prometheus.NewRegistry()}
	g.sink = testsupport.NewSink(t, func(e event.Event) error {
		if strings.HasPrefix(e.Type(), events.Prefix) {
			return events.Validate(e)
		}
		return nil
	})
	s, err := sender.New(g.sink.URL)
	if err != nil {
		t.Fatal(err)
	}
	base := []gateway.Option{
		gateway.WithStore(g.store), gateway.WithSender(s), gateway.WithLogger(zerolog.Nop()), gateway.WithMetrics(g.reg),
		gateway.WithTokens(gateway.Token{Name: "writer", Scope: gateway.ScopeWrite, Token: writeToken},
			gateway.Token{Name: "reader", Scope: gateway.ScopeRead, Token: readToken}),
	}
	g.f = gateway.New(append(base, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := g.f.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(g.f.Handle))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	g.ledger = ledger.New(g.store, "platform")
	return g
}

// do makes a request with token (none when empty) and a JSON body (none
// when nil; raw bytes as they are), and returns the status and body.
func (g *testGateway) do(t *testing.T, method, path, token string, body any, headers ...string) (int, []byte, http.Header) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, g.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// getJSON GETs path with the read token into v, failing unless 200.
func (g *testGateway) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	code, b, _ := g.do(t, http.MethodGet, path, readToken, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

// record keeps e in the ledger, as the run-recorder does.
func (g *testGateway) record(t *testing.T, e event.Event) {
	t.Helper()
	if err := g.ledger.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// deliver posts e to the gateway as the broker delivers it.
func (g *testGateway) deliver(t *testing.T, e event.Event) {
	t.Helper()
	if code, _, body := testsupport.Deliver(t, g.URL+"/", e); code != http.StatusAccepted {
		t.Fatalf("delivering %s = %d %s", e.Type(), code, body)
	}
}

func digestOf(s string) string { return "sha256:" + strings.Repeat(s, 64)[:64] }

// uploaded records a dataset.uploaded of name at prefix in the ledger.
func (g *testGateway) uploaded(t *testing.T, name, prefix, digest string, at time.Time) events.DatasetRef {
	t.Helper()
	ref := events.DatasetRef{Bucket: "datasets", Prefix: prefix, Digest: digest, Task: events.TaskClassification, Format: events.FormatImageFolder}
	e, err := events.New(context.Background(), "/test", events.DatasetUploadedData{DatasetRef: ref, Name: name, Manifest: prefix + "manifest.json", Files: 2, Bytes: 20},
		events.WithTime(at))
	if err != nil {
		t.Fatal(err)
	}
	g.record(t, e)
	return ref
}

// job makes a job.requested of model on ref.
func job(ref events.DatasetRef, model string, epochs int) events.JobRequestedData {
	fw, name, _ := strings.Cut(model, "/")
	j := events.JobRequestedData{Dataset: ref, Model: events.ModelRef{Framework: fw, Name: name},
		Hyperparameters: events.Hyperparameters{Epochs: epochs, BatchSize: 8, LearningRate: 0.01, ImageSize: 32}}
	j.ID = events.JobID(ref.Digest, j.Model, j.Hyperparameters)
	return j
}

func mustEvent(t *testing.T, p events.Payload, opts ...events.Option) event.Event {
	t.Helper()
	e, err := events.New(context.Background(), "/test", p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// errorBody decodes an error answer, failing unless it has a code.
func errorBody(t *testing.T, b []byte) (code, field string) {
	t.Helper()
	var e struct {
		Code   string `json:"code"`
		Error  string `json:"error"`
		Field  string `json:"field"`
		Fields []events.FieldError
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Code == "" || e.Error == "" {
		t.Fatalf("an error answer is not {code, error, ...}: %v\n%s", err, b)
	}
	return e.Code, e.Field
}
