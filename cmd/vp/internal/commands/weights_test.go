package commands

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/internal/weights"
)

func TestParseModel(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{"torchvision/resnet18", ""},
		{"timm/resnet50", ""},
		{"resnet18", "want FRAMEWORK/NAME"},
		{"timm/", "want FRAMEWORK/NAME"},
		{"a/b/c", "want FRAMEWORK/NAME"},
		{"timm/nosuchnet", "not in the catalog"},
	} {
		_, err := parseModel(c.in)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "--model")) {
			t.Errorf("parseModel(%q) = %v, want %q", c.in, err, c.err)
		}
	}
}

// TestInt_WeightsImport runs vp weights import and ls against a real MinIO:
// credentials from the environment, then from vp up's data folder.
func TestInt_WeightsImport(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	minioReady(t, m)
	for k, v := range map[string]string{
		"VP_S3_ENDPOINT": m.Endpoint, "VP_S3_ACCESS_KEY": testsupport.MinIOUser, "VP_S3_SECRET_KEY": testsupport.MinIOPassword,
		"VP_S3_SESSION_TOKEN": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "VP_WEIGHTS_BUCKET": "",
	} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	dir := t.TempDir()
	big := make([]byte, 9<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "resnet18-f37072fd.pth")
	if err := os.WriteFile(file, big, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(big)
	hexSum := hex.EncodeToString(sum[:])

	out, err := run(ctx, "", "weights", "ls")
	if err != nil || !strings.Contains(out, "no weights imported in s3://weights/") {
		t.Errorf("vp weights ls before any import = %q, %v", out, err)
	}
	// The bucket is made on first import; a large file shows its progress.
	out, err = run(ctx, "", "weights", "import", file, "--model", "torchvision/resnet18")
	if err != nil {
		t.Fatalf("vp weights import: %v\n%s", err, out)
	}
	for _, want := range []string{
		"hashing resnet18-f37072fd.pth: 100% of 9.0 MiB", "uploading resnet18-f37072fd.pth: 100% of 9.0 MiB",
		"torchvision/resnet18: imported resnet18-f37072fd.pth (9.0 MiB, sha256 " + hexSum + ") as s3://weights/torchvision/resnet18/" + hexSum + ".pth",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("vp weights import output lacks %q:\n%s", want, out)
		}
	}
	s := objstore.FromMinIO(m.Client)
	rec, err := weights.Current(ctx, s, events.ModelRef{Framework: "torchvision", Name: "resnet18"})
	if err != nil || rec.SHA256 != hexSum || rec.Size != int64(len(big)) || rec.File != "resnet18-f37072fd.pth" {
		t.Fatalf("current weights after the import = %+v, %v", rec, err)
	}
	fetched, _, err := weights.Fetch(ctx, s, rec.Model(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(fetched); err != nil || sha256.Sum256(b) != sum {
		t.Errorf("the fetched file is not the imported one (%v)", err)
	}

	// Credentials from vp up's data folder when the environment has none.
	t.Setenv("VP_S3_ACCESS_KEY", "")
	t.Setenv("VP_S3_SECRET_KEY", "")
	data := t.TempDir()
	creds := fmt.Sprintf(`{"minioUser": %q, "minioPassword": %q, "intakeToken": "x"}`, testsupport.MinIOUser, testsupport.MinIOPassword)
	if err := os.WriteFile(filepath.Join(data, "credentials.json"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "tiny.pt")
	if err := os.WriteFile(small, []byte("not really weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run(ctx, "", "weights", "import", small, "--model", "timm/resnet18", "--data", data)
	if err != nil || strings.Contains(out, "hashing") {
		t.Errorf("vp weights import of a small file with vp up's credentials = %v\n%s (want no progress lines)", err, out)
	}
	out, err = run(ctx, "", "weights", "ls", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "MODEL") || !strings.Contains(lines[1], "timm/resnet18") || !strings.Contains(lines[1], "tiny.pt") ||
		!strings.Contains(lines[2], "torchvision/resnet18") || !strings.Contains(lines[2], hexSum[:12]) {
		t.Errorf("vp weights ls =\n%s", out)
	}

	// Errors say what is wrong: the model, the file, the credentials.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"weights", "import", small, "--model", "timm/nosuchnet", "--data", data}, "--model timm/nosuchnet: not in the catalog"},
		{[]string{"weights", "import", filepath.Join(dir, "nope.pt"), "--model", "timm/resnet18", "--data", data}, "importing " + filepath.Join(dir, "nope.pt")},
		{[]string{"weights", "import", dir, "--model", "timm/resnet18", "--data", data}, "importing " + dir + ": it is a folder"},
		{[]string{"weights", "import", small, "--data", data}, `"model" not set`},
		{[]string{"weights", "ls", "--data", t.TempDir()}, "no object storage credentials: set VP_S3_ACCESS_KEY"},
	} {
		if out, err := run(ctx, "", c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("vp %s = %v, want an error saying %q\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
}

// minioReady waits until MinIO's object layer answers (its health check
// answers before that, and StartMinIO with no bucket to make does not
// wait for it).
func minioReady(t *testing.T, m *testsupport.MinIO) {
	t.Helper()
	testsupport.Eventually(t, 30*time.Second, "MinIO's object layer", func() bool {
		_, err := m.Client.BucketExists(context.Background(), "probe")
		return err == nil
	})
}
