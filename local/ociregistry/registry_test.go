package ociregistry

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/vision-platform/vp/internal/testsupport"
)

// serve runs the registry stored in dir on a loopback port with Serve;
// stop shuts it down and fails the test if Serve failed. Stopping twice is
// harmless, and the test's end stops it too.
func serve(t *testing.T, dir string, opts ...Option) (string, func()) {
	t.Helper()
	return serveRegistry(t, newRegistry(t, dir, opts...))
}

func newRegistry(t *testing.T, dir string, opts ...Option) *Registry {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r, err := New(ctx, dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func serveRegistry(t *testing.T, r *Registry) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func parseRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestInt_PersistsAcrossRestarts(t *testing.T) {
	testsupport.Integration(t)
	dir := t.TempDir()
	addr, stop := serve(t, dir)
	img, err := random.Image(1<<16, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(parseRef(t, addr+"/vp/test:v1"), img); err != nil {
		t.Fatalf("push: %v", err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	stop()

	addr2, _ := serve(t, dir) // a new process would see the same
	got, err := remote.Image(parseRef(t, addr2+"/vp/test:v1"))
	if err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	if d, err := got.Digest(); err != nil || d != want {
		t.Errorf("digest after restart = %s (%v), want %s", d, err, want)
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
	testsupport.Integration(t)
	bin := testsupport.Tool(t, "conformance", "the OCI conformance tool")
	addr, _ := serve(t, t.TempDir())
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
		junit, jerr := os.ReadFile(filepath.Join(results, "junit.xml"))
		if jerr != nil {
			junit = []byte(jerr.Error())
		}
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
