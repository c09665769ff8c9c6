package up

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/functions/gateway/client"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/testsupport"
)

// readToken is the read-only token the gateway tests add with a tokens
// file (vp up --gateway-tokens).
const readToken = "read-only-token-of-the-tests"

var gatewayLine = regexp.MustCompile(`gateway \(API, console\)\s+http://(\S+)\s+token (\S+)`)

// gatewayOf finds the gateway's address and token in vp up's summary.
func gatewayOf(t *testing.T, p *platform) (string, string) {
	t.Helper()
	m := gatewayLine.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("the summary does not give the gateway's address and token:\n%s", p.out.String())
	}
	return "http://" + m[1], m[2]
}

// startGatewayPlatform is vp up with a read-only gateway token added.
func startGatewayPlatform(t *testing.T) (*platform, string, string) {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - {name: dashboard, scope: read, token: "+readToken+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, filepath.Join(dir, "data"))
	c.GatewayTokensFile = tokens
	p := startPlatform(t, c)
	url, token := gatewayOf(t, p)
	return p, url, token
}

// outputDir is where the tests leave what people look at (screenshots):
// $VP_TEST_OUTPUT when set, else the test's temporary folder.
func outputDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("VP_TEST_OUTPUT"); d != "" {
		dir := filepath.Join(d, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// TestInt_Gateway runs the gateway in vp up with the whole platform: a
// dataset uploaded through its presigned URLs is taken by the intake; a
// job asked of its API trains for real, followed live to its end; its
// outputs come back through presigned URLs; refused callers start
// nothing; Schemathesis checks the OpenAPI document against it; and the
// console, in Chromium, filters models, starts a job from a card, follows
// it to its end with its curve, and compares two runs.
func TestInt_Gateway(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	p, url, token := startGatewayPlatform(t)
	ctx := context.Background()
	c, err := client.New(url, token)
	if err != nil {
		t.Fatal(err)
	}

	// A dataset through the presigned URLs; the ordinary pipeline takes it.
	dir := t.TempDir()
	testsupport.MakeImageFolder(t, dir, 8, 32)
	up, err := c.Upload(ctx, dir, api.UploadRequest{Name: "cats", Task: "classification", Format: "imagefolder"}, client.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds := p.dataset(t, up.Prefix, func(s ledger.DatasetStatus) bool { return s.State == "uploaded" })
	var listed api.DatasetList
	if listed, err = c.Datasets(ctx); err != nil || !slices.ContainsFunc(listed.Datasets, func(d ledger.DatasetStatus) bool { return d.Digest == ds.Digest }) {
		t.Errorf("GET /datasets = %+v, %v; want cats", listed, err)
	}

	// Refused callers start nothing.
	refused := api.JobRequest{Model: "torchvision/resnet18", Dataset: api.DatasetSelector{Name: "cats"},
		Hyperparameters: events.Hyperparameters{Epochs: 5, ImageSize: 32}}
	for _, cl := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"a-token-nobody-configured", http.StatusUnauthorized}, {readToken, http.StatusForbidden}} {
		var err error
		if cl.token == "" {
			var req *http.Request
			req, err = http.NewRequest(http.MethodPost, url+"/api/v1/jobs", strings.NewReader(`{"model":"torchvision/resnet18","dataset":{"name":"cats"}}`))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != cl.want {
				t.Errorf("POST /jobs without a token = %d, want %d", resp.StatusCode, cl.want)
			}
			continue
		}
		rc, err := client.New(url, cl.token)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rc.Train(ctx, refused, "")
		var ge *client.Error
		if !errors.As(err, &ge) || ge.Status != cl.want {
			t.Errorf("POST /jobs with token %q = %v, want %d", cl.token, err, cl.want)
		}
	}

	// A job through the API, followed live to its end.
	acc, err := c.Train(ctx, api.JobRequest{Model: "torchvision/resnet18", Dataset: api.DatasetSelector{Name: "cats"},
		Hyperparameters: events.Hyperparameters{Epochs: 2, BatchSize: 8, ImageSize: 32, Seed: 1},
		Resources:       events.Resources{Executor: "process"}}, "api-job-1")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	fctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	err = c.Follow(fctx, acc.JobID, "", func(e client.Event) error {
		seen = append(seen, e.Type)
		return nil
	})
	cancel()
	if err != nil {
		t.Fatalf("following %s: %v (saw %v)\n%s", acc.JobID, err, seen, tail(p.logs.String(), 40))
	}
	if testsupport.InOrder(strings.Join(seen, " "), "job.requested", "image.built", "run.started", "run.progress", "run.finished") != "" {
		t.Errorf("the stream of %s = %v, want the job from request to run.finished with its progress", acc.JobID, seen)
	}
	job := p.job(t, acc.JobID)
	if job.State != ledger.StateSucceeded {
		t.Fatalf("job %s = %s (%s)\n%s", job.JobID, job.State, job.Reason, job.LogTail)
	}
	jobs, err := p.ledger.Jobs(ctx)
	if err != nil || len(jobs) != 1 {
		t.Errorf("the ledger has jobs %v, %v; want the one asked with the write token", jobs, err)
	}
	arts, err := c.Artifacts(ctx, acc.JobID)
	if err != nil || !slices.ContainsFunc(arts.Artifacts, func(a api.Artifact) bool { return a.Name == "metrics.json" }) {
		t.Fatalf("artifacts of %s = %+v, %v", acc.JobID, arts, err)
	}
	for _, a := range arts.Artifacts {
		if a.Name != "metrics.json" {
			continue
		}
		if _, err := c.Download(ctx, a, t.TempDir()); err != nil {
			t.Errorf("downloading %s: %v", a.Name, err)
		}
	}
	// Asked again, the same job starts nothing.
	again, err := c.Train(ctx, api.JobRequest{Model: "torchvision/resnet18", Dataset: api.DatasetSelector{Name: "cats"},
		Hyperparameters: events.Hyperparameters{Epochs: 2, BatchSize: 8, ImageSize: 32, Seed: 1},
		Resources:       events.Resources{Executor: "process"}}, "")
	if err != nil || again.Created || again.JobID != acc.JobID || again.State != ledger.StateSucceeded {
		t.Errorf("the same job again = %+v, %v; want the finished job, nothing created", again, err)
	}

	t.Run("openapi", func(t *testing.T) { schemathesis(t, url, token) })
	t.Run("console", func(t *testing.T) { consoleInBrowser(t, p, url, token, acc.JobID) })
}

// schemathesis runs Schemathesis (make deps installs it from PyPI) against
// the running gateway with every check, a bounded number of examples per
// operation and a fixed seed, so that it stays under a minute.
func schemathesis(t *testing.T, url, token string) {
	home, _ := os.UserHomeDir()
	bin := filepath.Join(home, ".cache", "vision-platform", "bin", "schemathesis")
	if _, err := os.Stat(bin); err != nil {
		if b, merr := os.ReadFile(bin + ".unavailable"); merr == nil {
			t.Skipf("Schemathesis cannot be installed here: PyPI (the polyglot kind has it): %s", strings.TrimSpace(string(b)))
		}
		t.Fatalf("Schemathesis is missing (%v): run make deps (it installs it from PyPI)", err)
	}
	cfg := filepath.Join(testsupport.ModuleRoot(t), "functions", "gateway", "testdata", "schemathesis.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--no-color", "--config-file", cfg, "run", url+"/openapi.json",
		"--checks", "all", "-H", "Authorization: Bearer "+token,
		"--max-examples", "10", "--workers", "2", "--seed", "1", "--request-timeout", "10",
		"--report", "junit", "--report-dir", outputDir(t))
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("schemathesis: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "passed") {
		t.Errorf("schemathesis ran no test:\n%s", out)
	}
	t.Logf("schemathesis: %s", lastLines(string(out), 3))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
