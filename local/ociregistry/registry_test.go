package ociregistry

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/vision-platform/vp/internal/testsupport"
)

// serve runs the registry stored in dir on a loopback port.
func serve(t *testing.T, dir string) (string, func()) {
	t.Helper()
	h, err := New(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }
}

func TestInt_PersistsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	addr, stop := serve(t, dir)
	img, err := random.Image(1<<16, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(addr + "/vp/test:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	want, _ := img.Digest()
	stop()

	addr2, stop2 := serve(t, dir) // a new process would see the same
	defer stop2()
	ref2, _ := name.ParseReference(addr2 + "/vp/test:v1")
	got, err := remote.Image(ref2)
	if err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	if d, _ := got.Digest(); d != want {
		t.Errorf("digest after restart = %s, want %s", d, want)
	}
	if err := validate.Image(got); err != nil {
		t.Errorf("image after restart: %v", err)
	}
}

// TestInt_Conformance runs the OCI distribution-spec conformance suite
// against the embedded registry. Features distribution v3 does not
// implement are switched off here, each named: sha512 digests, the
// referrers API and subjects, and non-distributable layers.
func TestInt_Conformance(t *testing.T) {
	bin := testsupport.Tool(t, "conformance", "the OCI conformance tool")
	addr, stop := serve(t, t.TempDir())
	defer stop()
	results := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+addr, "OCI_TLS=disabled", "OCI_RESULTS_DIR="+results, "OCI_VERSION=1.1", "OCI_LOG=warn",
		"OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo2",
		"OCI_DATA_SHA512=false",
		"OCI_API_REFERRER=false", "OCI_DATA_SUBJECT=false", "OCI_DATA_SUBJECT_MISSING=false", "OCI_DATA_SUBJECT_LIST=false",
		"OCI_DATA_NONDISTRIBUTABLE=false",
	)
	out, err := cmd.CombinedOutput()
	summary := string(out)
	if i := strings.LastIndex(summary, "Ran "); i >= 0 {
		summary = summary[i:]
	}
	if err != nil {
		junit, _ := os.ReadFile(filepath.Join(results, "junit.xml"))
		t.Fatalf("conformance: %v\n%s\n--- failures (junit) ---\n%s", err, tail(string(out), 4000), failures(string(junit)))
	}
	t.Logf("conformance passed: %s", strings.TrimSpace(summary))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func failures(junit string) string {
	var out []string
	for _, part := range strings.Split(junit, "<testcase")[1:] {
		if strings.Contains(part, "<failure") {
			n := part
			if i := strings.Index(n, ">"); i >= 0 {
				n = n[:i]
			}
			out = append(out, strings.TrimSpace(n))
		}
	}
	return strings.Join(out, "\n")
}
