package commands

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/vision-platform/vp/internal/testsupport"
)

func run(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := New()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// TestInt_BrokerAndEmit runs `vp broker` and `vp emit` as a user would,
// over real HTTP, with a subscriber behind a trigger.
func TestInt_BrokerAndEmit(t *testing.T) {
	testsupport.Integration(t)
	var mu sync.Mutex
	var got []string
	sub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err == nil {
			mu.Lock()
			got = append(got, e.Type()+" "+string(e.Data())+" "+fmt.Sprint(e.Extensions()["team"]))
			mu.Unlock()
		}
	}))
	defer sub.Close()
	dir := t.TempDir()
	triggers := filepath.Join(dir, "triggers.yaml")
	os.WriteFile(triggers, []byte(fmt.Sprintf("apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: all}\nspec:\n  subscriber: {uri: %s}\n", sub.URL)), 0o644)
	addr := testsupport.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, "", "broker", "--data", filepath.Join(dir, "data"), "--triggers", triggers, "--addr", addr, "--log-format", "console")
		done <- err
	}()
	url := "http://" + addr + "/default/default"
	testsupport.WaitHTTP(t, "http://"+addr+"/readyz", 15*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	if out, err := run(context.Background(), `{"hello":"stdin"}`, "emit", "--broker", url, "--type", "com.example.hello", "--ext", "team=vision", "--data-file", "-"); err != nil {
		t.Fatalf("vp emit: %v\n%s", err, out)
	}
	if out, err := run(context.Background(), "", "emit", "--broker", url, "--type", "com.example.hello", "--structured", "--data", `{"hello":"flag"}`); err != nil {
		t.Fatalf("vp emit --structured: %v\n%s", err, out)
	}
	// A payload the broker refuses comes back as a clear error.
	if out, err := run(context.Background(), "", "emit", "--broker", url, "--type", "com.example.hello", "--data", `{bad`); err == nil || !strings.Contains(out, "line 1, column 2") {
		t.Errorf("vp emit with bad JSON: err %v, output %q", err, out)
	}
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]bool{`com.example.hello {"hello":"stdin"} vision`: true, `com.example.hello {"hello":"flag"} <nil>`: true}
	if len(got) != 2 || !want[got[0]] || !want[got[1]] {
		t.Errorf("subscriber got %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("vp broker exited with %v", err)
	}
}

func TestBrokerFlagsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: x}\nspec:\n  subscriber: {uri: http://x/}\n  nope: 1\n"), 0o644)
	out, err := run(context.Background(), "", "broker", "--data", dir, "--triggers", bad, "--addr", testsupport.FreeAddr(t))
	if err == nil || !strings.Contains(out, bad+":6:") || !strings.Contains(out, "nope") {
		t.Errorf("vp broker with a bad trigger file: err %v, output %q; want file:line and the field", err, out)
	}
	out, err = run(context.Background(), "", "broker", "--addr", testsupport.FreeAddr(t))
	if err == nil || !strings.Contains(out, "--data") {
		t.Errorf("vp broker without storage: err %v, output %q", err, out)
	}
	out, err = run(context.Background(), "", "broker", "--data", dir, "--log-format", "xml")
	if err == nil || !strings.Contains(out, "--log-format") {
		t.Errorf("bad --log-format: err %v, output %q", err, out)
	}
}
