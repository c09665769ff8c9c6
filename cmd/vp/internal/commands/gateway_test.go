package commands

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/gateway"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/registry"
)

const cliToken = "cli-test-token-0123456789"

// TestInt_GatewayCommands runs vp models, train, jobs, job --follow, upload
// and artifacts as a user would, against a gateway on a real MinIO whose
// events go to a sink standing in for the broker.
func TestInt_GatewayCommands(t *testing.T) {
	testsupport.Integration(t)
	ctx := context.Background()
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	m.Bucket(t, "platform")
	sink := testsupport.NewSink(t, events.Validate)
	s, err := sender.New(sink.URL)
	if err != nil {
		t.Fatal(err)
	}
	store := objstore.FromMinIO(m.Client)
	lim := gateway.DefaultLimits
	lim.PartSize = 5 << 20
	f := gateway.New(gateway.WithStore(store), gateway.WithSender(s), gateway.WithLogger(zerolog.Nop()), gateway.WithLimits(lim),
		gateway.WithTokens(gateway.Token{Name: "cli", Scope: gateway.ScopeWrite, Token: cliToken}))
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := f.Start(gctx, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(f.Handle))
	defer srv.Close()
	t.Setenv("VP_GATEWAY", srv.URL)
	t.Setenv("VP_TOKEN", cliToken)
	l := ledger.New(store, "platform")

	out, err := run(ctx, "", "models", "--framework", "timm")
	timm := registry.Default().Filter(registry.Query{Framework: "timm"})
	if err != nil || !strings.Contains(out, "timm/resnet18") || strings.Contains(out, "torchvision/resnet18") ||
		!strings.Contains(out, fmt.Sprintf("%d of %d models", len(timm), len(registry.Default().Models()))) {
		t.Errorf("vp models --framework timm: %v\n%s", err, out)
	}

	// Upload a folder whose dataset.yaml names it; the bar reaches 100%.
	dir := t.TempDir()
	testsupport.MakeImageFolder(t, dir, 2, 8)
	if err := os.WriteFile(filepath.Join(dir, "dataset.yaml"), []byte("name: cats\ntask: classification\nformat: imagefolder\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run(ctx, "", "upload", dir)
	if err != nil || !strings.Contains(out, "datasets/cats/") || !strings.Contains(out, "100%") {
		t.Fatalf("vp upload: %v\n%s", err, out)
	}
	if _, err := m.Client.StatObject(ctx, "datasets", "cats/dataset.yaml", minio.StatObjectOptions{}); err != nil {
		t.Errorf("no dataset.yaml after vp upload: %v", err)
	}
	out, err = run(ctx, "", "upload", dir, "--dataset", "Cats!")
	if err == nil || !strings.Contains(err.Error(), "--dataset") {
		t.Errorf("vp upload with a bad name: %v, want an error naming --dataset\n%s", err, out)
	}

	// The intake's dataset.uploaded, as the ledger records it.
	ref := events.DatasetRef{Bucket: "datasets", Prefix: "cats/", Digest: "sha256:" + strings.Repeat("c", 64), Task: "classification", Format: "imagefolder"}
	up, err := events.New(ctx, "/test", events.DatasetUploadedData{DatasetRef: ref, Name: "cats", Manifest: "cats/manifest.json", Files: 6, Bytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Record(ctx, up); err != nil {
		t.Fatal(err)
	}
	out, err = run(ctx, "", "train", "--model", "torchvision/resnet18", "--dataset", "cats", "--epochs", "2")
	id := strings.TrimSpace(out)
	reqs := sink.OfType(string(events.JobRequested))
	if err != nil || len(reqs) != 1 || reqs[0].ID() != id {
		t.Fatalf("vp train: %v, %d job.requested\n%s", err, len(reqs), out)
	}
	out, err = run(ctx, "", "train", "--model", "torchvision/resnet18", "--dataset", "cats", "--epochs", "-3")
	if err == nil || !strings.Contains(err.Error(), "--epochs") {
		t.Errorf("vp train --epochs -3: %v, want an error naming --epochs\n%s", err, out)
	}
	if err := l.Record(ctx, reqs[0]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the gateway's job list cache
	out, err = run(ctx, "", "jobs", "--model", "torchvision/resnet18")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "requested") {
		t.Errorf("vp jobs: %v\n%s", err, out)
	}

	// vp job --follow prints the events as they come and ends with the job.
	var j events.JobRequestedData
	if err := events.DecodeInto(reqs[0], &j); err != nil {
		t.Fatal(err)
	}
	content := []byte("weights")
	sum := sha256.Sum256(content)
	if _, err := m.Client.PutObject(ctx, "platform", "runs/r1/weights.pt", bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var followOut string
	var followErr error
	go func() {
		defer close(done)
		followOut, followErr = run(ctx, "", "job", id, "--follow")
	}()
	time.Sleep(300 * time.Millisecond) // let it subscribe; events delivered before are in the ledger anyway
	for _, p := range []events.Payload{
		events.RunStartedData{Job: j, RunID: "r1", Image: "img@sha256:" + strings.Repeat("1", 64), Executor: "process", Output: "s3://platform/runs/r1/"},
		events.RunProgressData{Job: id, RunID: "r1", Epoch: 1, Step: 3, Metrics: map[string]float64{"loss": 0.7}, Time: time.Now()},
		events.RunFinishedData{Job: id, RunID: "r1", Status: events.StatusSucceeded, DurationSeconds: 2, Metrics: map[string]float64{"accuracy": 0.9},
			Artifacts: []events.Artifact{{Name: "weights.pt", URI: "s3://platform/runs/r1/weights.pt", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}}},
	} {
		e, err := events.New(ctx, "/test", p)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
		if code, _, body := testsupport.Deliver(t, srv.URL+"/", e); code != http.StatusAccepted {
			t.Fatalf("delivering %s = %d %s", e.Type(), code, body)
		}
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("vp job --follow did not end after run.finished")
	}
	if followErr != nil || testsupport.InOrder(followOut, "job.requested", "run.started", "r1 on process", "run.progress", "loss=0.7", "run.finished", "succeeded") != "" {
		t.Errorf("vp job --follow: %v\n%s", followErr, followOut)
	}
	time.Sleep(1100 * time.Millisecond)
	out, err = run(ctx, "", "job", id)
	if err != nil || !strings.Contains(out, "succeeded") || !strings.Contains(out, "accuracy=0.9") {
		t.Errorf("vp job: %v\n%s", err, out)
	}
	dl := t.TempDir()
	out, err = run(ctx, "", "artifacts", id, "--download", dl)
	if b, rerr := os.ReadFile(filepath.Join(dl, "weights.pt")); err != nil || rerr != nil || !bytes.Equal(b, content) {
		t.Errorf("vp artifacts --download: %v, %v\n%s", err, rerr, out)
	}
	out, err = run(ctx, "", "artifacts", id)
	if err != nil || !strings.Contains(out, hex.EncodeToString(sum[:])) {
		t.Errorf("vp artifacts: %v\n%s", err, out)
	}
}

// TestGatewayFlagErrors: what is missing is named by its flag.
func TestGatewayFlagErrors(t *testing.T) {
	t.Setenv("VP_TOKEN", "")
	t.Setenv("VP_GATEWAY", "")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"models", "--gateway", "http://127.0.0.1:1"}, "--token"},
		{[]string{"jobs", "--gateway", "127.0.0.1:1", "--token", "x"}, "--gateway"},
		{[]string{"train", "--gateway", "http://127.0.0.1:1", "--token", "x", "--model", "resnet18", "--dataset", "d"}, "--model"},
		{[]string{"train", "--gateway", "http://127.0.0.1:1", "--token", "x", "--model", "a/b"}, "--dataset"},
		{[]string{"upload", t.TempDir(), "--gateway", "http://127.0.0.1:1", "--token", "x", "--task", "classification", "--format", "imagefolder"}, "--dataset"},
		{[]string{"job", "j", "--gateway", "http://127.0.0.1:1", "--token", "x", "-o", "xml"}, "--output"},
	}
	for _, c := range cases {
		out, err := run(context.Background(), "", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("vp %s = %v (output %q), want an error naming %s", strings.Join(c.args, " "), err, out, c.want)
		}
	}
}
