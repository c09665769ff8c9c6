package up

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
)

// platformTriggers makes vp up's functions and triggers for c, each
// function on a loopback port of its own, and returns each function's
// triggers (filtered type → delivery: "default" or policy, delay and
// retries) and the functions by name.
func platformTriggers(t *testing.T, c Config) (map[string]map[string]string, map[string]platformFunction) {
	t.Helper()
	c.DataDir = t.TempDir()
	c.ImageCache = t.TempDir()
	c.defaults()
	fns, err := c.functions(Credentials{MinIOUser: "vp", MinIOPassword: "password", IntakeToken: "token"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]platformFunction{}
	addrs := map[string]string{}
	for i := range fns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		fns[i].ln = ln
		byName[fns[i].name] = fns[i]
		addrs["http://"+ln.Addr().String()+"/"] = fns[i].name
	}
	trs, err := triggers(fns, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]string{}
	for _, tr := range trs {
		name := addrs[tr.Spec.Subscriber.URI]
		if name == "" {
			continue // the event display
		}
		if got[name] == nil {
			got[name] = map[string]string{}
		}
		typ := "*"
		if tr.Spec.Filter != nil && tr.Spec.Filter.Attributes["type"] != "" {
			typ = tr.Spec.Filter.Attributes["type"]
		}
		d := "default"
		if s := tr.Spec.Delivery; s != nil && s.Retry != nil {
			d = fmt.Sprintf("%s %s x%d", s.BackoffPolicy, s.BackoffDelay, *s.Retry)
		}
		got[name][typ] = d
	}
	return got, byName
}

// TestMLflowFunction: without --mlflow, vp up runs the functions and
// triggers it always did; with it, mlflow-sync joins them with its
// func.yaml's three triggers (redelivered for about an hour) and its
// settings, and nothing else changes.
func TestMLflowFunction(t *testing.T) {
	without, fns := platformTriggers(t, Config{})
	if _, ok := fns["mlflow-sync"]; ok {
		t.Errorf("without MLflow, vp up runs mlflow-sync")
	}
	with, fns := platformTriggers(t, Config{MLflow: "http://127.0.0.1:5000", MLflowSettings: map[string]string{
		"VP_MLFLOW_TOKEN": "tok", "VP_MLFLOW_REGISTER_MODELS": "true", "UNRELATED": "x",
	}})
	want := map[string]string{
		string(events.RunStarted): "linear PT2S x60", string(events.RunProgress): "linear PT2S x60", string(events.RunFinished): "linear PT2S x60",
	}
	if diff := cmp.Diff(want, with["mlflow-sync"]); diff != "" {
		t.Errorf("mlflow-sync's triggers (-want +got):\n%s", diff)
	}
	delete(with, "mlflow-sync")
	if diff := cmp.Diff(without, with); diff != "" {
		t.Errorf("the other functions' triggers changed with MLflow (-without +with):\n%s", diff)
	}
	f, ok := fns["mlflow-sync"]
	if !ok {
		t.Fatal("with MLflow, vp up does not run mlflow-sync")
	}
	for k, v := range map[string]string{
		"VP_MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "VP_MLFLOW_TOKEN": "tok",
		"VP_MLFLOW_REGISTER_MODELS": "true", "VP_RUNS_BUCKET": RunsBucket,
	} {
		if f.cfg[k] != v {
			t.Errorf("mlflow-sync's %s = %q, want %q", k, f.cfg[k], v)
		}
	}
	if _, ok := f.cfg["UNRELATED"]; ok {
		t.Errorf("mlflow-sync got a setting it does not read: %v", f.cfg)
	}
	if err := f.f.Start(context.Background(), f.cfg); err != nil {
		t.Errorf("mlflow-sync's Start with vp up's settings: %v", err)
	}
}

func TestMLflowPreflight(t *testing.T) {
	err := preflight(context.Background(), Config{MLflow: "ftp://mlflow"})
	var p *Problem
	if !errors.As(err, &p) || !strings.Contains(p.Error(), "--mlflow") {
		t.Errorf("preflight with a bad MLflow URI = %v, want a Problem naming --mlflow", err)
	}
	err = preflight(context.Background(), Config{MLflow: "http://me:s3cret@mlflow:5000"})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("preflight with credentials in the MLflow URI = %v, want an error that does not print them", err)
	}
}
