package mlflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/functions/mlflow-sync/mlflow"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		opts []mlflow.Option
		ok   bool
	}{
		{"http://127.0.0.1:5000", nil, true},
		{"https://mlflow.example/prefix/", nil, true},
		{"ftp://host", nil, false},
		{"127.0.0.1:5000", nil, false},
		{"http://", nil, false},
		{"http://u:p@host", nil, false},
		{"http://host/?q=1", nil, false},
		{"http://host", []mlflow.Option{mlflow.WithToken("t"), mlflow.WithBasicAuth("u", "p")}, false},
		{"http://host", []mlflow.Option{mlflow.WithBasicAuth("u", "")}, false},
		{"http://host", []mlflow.Option{mlflow.WithToken("")}, false},
		{"http://host", []mlflow.Option{mlflow.WithTimeout(0)}, false},
	} {
		_, err := mlflow.New(tc.uri, tc.opts...)
		if (err == nil) != tc.ok {
			t.Errorf("New(%q, %d options) = %v, want ok %v", tc.uri, len(tc.opts), err, tc.ok)
		}
	}
	// A password in a bad URI is not repeated in the error.
	for _, uri := range []string{"ftp://me:pa55word@host", "http://me:pa55word@host", "http://me:pa55word@host/?q", "http://me:pa55word@host:badport"} {
		if _, err := mlflow.New(uri); err == nil || strings.Contains(err.Error(), "pa55word") {
			t.Errorf("New(a URI with a password) = %v, want an error without the password", err)
		}
	}
}

func TestLiteral(t *testing.T) {
	for in, want := range map[string]string{"run-1": "'run-1'", "it's": `"it's"`, "": "''"} {
		if got, err := mlflow.Literal(in); err != nil || got != want {
			t.Errorf("Literal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := mlflow.Literal(`'"`); !errors.Is(err, mlflow.ErrUnquotable) {
		t.Errorf("Literal(both quotes) = %v, want ErrUnquotable", err)
	}
}

// server records each request's path, Authorization header and body, and
// answers with answer (status and body).
type server struct {
	*httptest.Server
	mu     sync.Mutex
	paths  []string
	auths  []string
	bodies []map[string]json.RawMessage
	answer func(r *http.Request) (int, string)
}

func newServer(t *testing.T, answer func(r *http.Request) (int, string)) *server {
	s := &server{answer: answer}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading a request: %v", err)
		}
		var m map[string]json.RawMessage
		if len(b) > 0 {
			if err := json.Unmarshal(b, &m); err != nil {
				t.Errorf("a request body is not a JSON object: %v: %s", err, b)
			}
		}
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		s.auths = append(s.auths, r.Header.Get("Authorization"))
		s.bodies = append(s.bodies, m)
		s.mu.Unlock()
		code, body := http.StatusOK, "{}"
		if s.answer != nil {
			code, body = s.answer(r)
		}
		w.WriteHeader(code)
		if _, err := io.WriteString(w, body); err != nil {
			t.Errorf("answering: %v", err)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestLogBatchSplits: a batch over MLflow's limits goes in several
// requests, each within them, nothing lost.
func TestLogBatchSplits(t *testing.T) {
	s := newServer(t, nil)
	c, err := mlflow.New(s.URL + "/prefix")
	if err != nil {
		t.Fatal(err)
	}
	var ms []mlflow.Metric
	for i := 0; i < 2100; i++ {
		ms = append(ms, mlflow.Metric{Key: "loss", Value: float64(i), Step: int64(i)})
	}
	var ps []mlflow.Param
	var ts []mlflow.Tag
	for i := 0; i < 150; i++ {
		ps = append(ps, mlflow.Param{Key: fmt.Sprint("p", i), Value: "v"})
		ts = append(ts, mlflow.Tag{Key: fmt.Sprint("t", i), Value: "v"})
	}
	if err := c.LogBatch(context.Background(), "r1", ms, ps, ts); err != nil {
		t.Fatal(err)
	}
	var nm, np, nt int
	for i, b := range s.bodies {
		var m []mlflow.Metric
		var p []mlflow.Param
		var tg []mlflow.Tag
		for k, v := range map[string]any{"metrics": &m, "params": &p, "tags": &tg} {
			if raw, ok := b[k]; ok {
				if err := json.Unmarshal(raw, v); err != nil {
					t.Fatalf("request %d: %s: %v", i, k, err)
				}
			}
		}
		if len(m) > mlflow.MaxMetricsPerBatch || len(p) > mlflow.MaxParamsPerBatch || len(tg) > mlflow.MaxTagsPerBatch || len(m)+len(p)+len(tg) > mlflow.MaxEntitiesPerBatch {
			t.Errorf("request %d: %d metrics, %d params, %d tags: over MLflow's limits", i, len(m), len(p), len(tg))
		}
		if len(m) > 0 && m[0].Step != int64(nm) {
			t.Errorf("request %d starts at step %d, want %d (in order)", i, m[0].Step, nm)
		}
		nm, np, nt = nm+len(m), np+len(p), nt+len(tg)
		if s.paths[i] != "/prefix/api/2.0/mlflow/runs/log-batch" {
			t.Errorf("request %d went to %s", i, s.paths[i])
		}
	}
	if nm != 2100 || np != 150 || nt != 150 || len(s.bodies) != 3 {
		t.Errorf("LogBatch sent %d metrics, %d params, %d tags in %d requests; want 2100, 150, 150 in 3", nm, np, nt, len(s.bodies))
	}
}

func TestAuthHeader(t *testing.T) {
	s := newServer(t, nil)
	for _, tc := range []struct {
		opt  mlflow.Option
		want string
	}{
		{mlflow.WithToken("tok"), "Bearer tok"},
		{mlflow.WithBasicAuth("me", "pw"), "Basic bWU6cHc="},
	} {
		c, err := mlflow.New(s.URL, tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetTag(context.Background(), "r", "k", "v"); err != nil {
			t.Fatal(err)
		}
		if got := s.auths[len(s.auths)-1]; got != tc.want {
			t.Errorf("Authorization = %q, want %q", got, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		code                      int
		body                      string
		notFound, exists, perm    bool
		wantCode, wantMsgContains string
	}{
		{404, `{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"no such run"}`, true, false, true, "RESOURCE_DOES_NOT_EXIST", "no such run"},
		{400, `{"error_code":"RESOURCE_ALREADY_EXISTS","message":"taken"}`, false, true, true, "RESOURCE_ALREADY_EXISTS", "taken"},
		{400, `{"error_code":"INVALID_PARAMETER_VALUE","message":"bad key"}`, false, false, true, "INVALID_PARAMETER_VALUE", "bad key"},
		{503, `upstream down`, false, false, false, "", "upstream down"},
		{500, `{"error_code":"INTERNAL_ERROR","message":"db locked"}`, false, false, false, "INTERNAL_ERROR", "db locked"},
		{429, ``, false, false, false, "", ""},
		{401, `Unauthorized`, false, false, false, "", "Unauthorized"},
	} {
		s := newServer(t, func(*http.Request) (int, string) { return tc.code, tc.body })
		c, err := mlflow.New(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetRun(context.Background(), "r")
		var ae *mlflow.APIError
		if !errors.As(err, &ae) || ae.Status != tc.code || ae.Code != tc.wantCode || !strings.Contains(ae.Message, tc.wantMsgContains) || ae.Endpoint != "runs/get" {
			t.Errorf("%d %s: GetRun() = %#v", tc.code, tc.body, err)
			continue
		}
		got := []bool{errors.Is(err, mlflow.ErrNotFound), errors.Is(err, mlflow.ErrAlreadyExists), mlflow.Permanent(err)}
		if diff := cmp.Diff([]bool{tc.notFound, tc.exists, tc.perm}, got); diff != "" {
			t.Errorf("%d %s: NotFound, AlreadyExists, Permanent (-want +got):\n%s", tc.code, tc.body, diff)
		}
	}
	// No server at all: not permanent (the broker redelivers).
	s := httptest.NewServer(http.NotFoundHandler())
	s.Close()
	c, err := mlflow.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRun(context.Background(), "r"); err == nil || mlflow.Permanent(err) {
		t.Errorf("GetRun() with no server = %v, want a temporary error", err)
	}
}

func TestPaging(t *testing.T) {
	s := newServer(t, func(r *http.Request) (int, string) {
		if r.URL.Query().Get("page_token") == "" {
			return 200, `{"metrics":[{"key":"loss","value":1,"timestamp":5,"step":1}],"next_page_token":"p2"}`
		}
		return 200, `{"metrics":[{"key":"loss","value":0.5,"timestamp":6,"step":2}]}`
	})
	c, err := mlflow.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.MetricHistory(context.Background(), "r", "loss")
	if err != nil {
		t.Fatal(err)
	}
	want := []mlflow.Metric{{Key: "loss", Value: 1, Timestamp: 5, Step: 1}, {Key: "loss", Value: 0.5, Timestamp: 6, Step: 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MetricHistory() (-want +got):\n%s", diff)
	}
}
