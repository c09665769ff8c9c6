package demo

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/local/up"
)

// TestInt_Demo: against a real vp up (the process executor, real CPU
// training), a demo uploads its dataset, follows the job to run.finished
// succeeded, prints each event, the metrics, the artifacts' links and the
// console page, and accounts for the time.
func TestInt_Demo(t *testing.T) {
	testsupport.Integration(t)
	testsupport.RequireTorch(t)
	root := testsupport.ModuleRoot(t)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	c := up.Config{
		DataDir: data, BrokerAddr: testsupport.FreeAddr(t), DisplayAddr: testsupport.FreeAddr(t), GatewayAddr: testsupport.FreeAddr(t),
		RegistryAddr: testsupport.FreeAddr(t), MinIOAddr: testsupport.FreeAddr(t), MinIOConsoleAddr: testsupport.FreeAddr(t),
		MinIOBinary: testsupport.MinIOBinary(t), FunctionsPort: -1,
		Specs: filepath.Join(root, "images", "frameworks"), SDK: filepath.Join(root, "images", "python"),
		ImageCache: filepath.Join(home, ".cache", "vision-platform", "test-images"),
		Agent:      testsupport.BuildAgent(t), Python: testsupport.Python,
	}
	summary, logs := &testsupport.SyncBuffer{}, &testsupport.SyncBuffer{}
	c.Out = summary
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx, c, zerolog.New(logs)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("vp up: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("vp up did not stop within 60 s")
		}
	})
	testsupport.Eventually(t, 90*time.Second, "vp up's summary", func() bool { return strings.Contains(summary.String(), "Vision Platform is up") })
	b, err := os.ReadFile(filepath.Join(data, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var creds up.Credentials
	if err := json.Unmarshal(b, &creds); err != nil {
		t.Fatal(err)
	}

	var out testsupport.SyncBuffer
	r, err := Run(context.Background(), Config{
		MinIO: c.MinIOAddr, MinIOUser: creds.MinIOUser, MinIOPassword: creds.MinIOPassword,
		Gateway: "http://" + c.GatewayAddr, Token: creds.GatewayToken, Name: "demo-test",
		Dataset: Dataset{PerClass: 6, Side: 32}, Training: Training{Epochs: 1},
		Timeout: 5 * time.Minute, Out: &out,
	})
	if err != nil {
		t.Fatalf("Run() = %v\n%s\nvp up's log tail:\n%s", err, out.String(), tailLines(logs.String(), 30))
	}
	if r.State != ledger.StateSucceeded || r.JobID == "" || r.Prefix != "datasets/demo-test/" {
		t.Errorf("report = job %q %s, prefix %s", r.JobID, r.State, r.Prefix)
	}
	if r.Console != "http://"+c.GatewayAddr+"/jobs/"+r.JobID {
		t.Errorf("console link = %s", r.Console)
	}
	hasWeights := false
	for _, a := range r.Artifacts {
		if strings.HasPrefix(a.Name, "weights/") && strings.HasPrefix(a.URL, "http://"+c.MinIOAddr+"/runs/") {
			hasWeights = true
		}
	}
	if !hasWeights {
		t.Errorf("artifacts = %+v, want weights with a presigned link to MinIO", r.Artifacts)
	}
	tm := r.Times
	if tm.Requested.IsZero() || tm.Built.IsZero() || tm.Started.IsZero() || tm.FirstProgress.IsZero() || tm.Finished.IsZero() || tm.Total() <= 0 {
		t.Errorf("times = %+v: want every hop", tm)
	}
	// Events print as they reach the gateway's stream: image.built and
	// run.started (the gpu-runner's answer to it) come a few milliseconds
	// apart by two routes, in either order.
	for _, hop := range []string{"image.built", "run.started"} {
		if s := testsupport.InOrder(out.String(), "uploaded to s3://datasets/demo-test/", "dataset.uploaded", "job.requested", hop,
			"run.progress  epoch 1", "run.finished  succeeded", "metrics", "artifact   weights/", "console", "Where the time went", "training"); s != "" {
			t.Errorf("the demo's output lacks %q (in order):\n%s", s, out.String())
		}
	}
	t.Logf("the demo:\n%s", out.String())
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
