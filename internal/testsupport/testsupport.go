package testsupport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/minio/minio-go/v7"

	"github.com/vision-platform/vp/internal/dataset/datasettest"
	localminio "github.com/vision-platform/vp/local/minio"
)

// MinIO credentials of the test servers.
const (
	MinIOUser     = "vp-test"
	MinIOPassword = "vp-test-secret"
)

// MinIO is a MinIO server process on loopback.
type MinIO struct {
	Endpoint string // host:port
	Client   *minio.Client
	Dir      string
}

// SyncBuffer is a buffer one goroutine writes (a log, a process's
// output) while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DockerEngineWhere says, for a test that skips where no Docker Engine
// answers, where one does.
const DockerEngineWhere = "a Docker Engine answers on the go-docker kind of machine, and make deps starts Debian's docker.io on the polyglot kind"

// FreeAddr is a loopback host:port nothing listens on now, below Linux's
// ephemeral range (32768 and up, where a port the kernel picks comes
// from): a server stopped and started again on it, as the restart tests
// do, does not find it taken by some other test's outgoing connection.
func FreeAddr(t testing.TB) string {
	for range 100 {
		port := 10000 + rand.IntN(32768-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		return addr
	}
	t.Fatal("no free loopback port in 10000-32767 after 100 tries")
	return ""
}

// MinIOBinary finds the server that make deps installs.
func MinIOBinary(t testing.TB) string { return Tool(t, "minio", "the MinIO server") }

// Tool finds a program make deps installs: on PATH, or in the cache's bin
// folder; the test fails, saying so, when it is in neither.
func Tool(t testing.TB, name, what string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return cached(t, what, "bin", name)
}

// cached is a file make deps leaves in ~/.cache/vision-platform.
func cached(t testing.TB, what string, rel ...string) string {
	t.Helper()
	home, _ := os.UserHomeDir()
	p := filepath.Join(append([]string{home, ".cache", "vision-platform"}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing (%v): run make deps", what, err)
	}
	return p
}

// StartMinIO runs a MinIO server on a loopback port until the test ends,
// with webhook targets and buckets as local/minio sets them up.
func StartMinIO(t testing.TB, hooks ...localminio.Webhook) *MinIO {
	t.Helper()
	dir := t.TempDir()
	s, err := localminio.Start(context.Background(), localminio.Config{
		Binary: MinIOBinary(t), DataDir: dir, Addr: FreeAddr(t), ConsoleAddr: FreeAddr(t),
		User: MinIOUser, Password: MinIOPassword, Webhooks: hooks,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return &MinIO{Endpoint: s.Endpoint, Client: s.Client, Dir: dir}
}

// Bucket makes a bucket.
func (m *MinIO) Bucket(t testing.TB, name string) {
	t.Helper()
	if err := m.Client.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
}

// PutDir uploads every file under dir to bucket/prefix.
func (m *MinIO) PutDir(t testing.TB, dir, bucket, prefix string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		_, err = m.Client.FPutObject(context.Background(), bucket, prefix+filepath.ToSlash(rel), p, minio.PutObjectOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// MakeImageFolder writes a two-class ImageFolder dataset of small PNGs:
// reddish "cat" and bluish "dog" images, perClass in train/ and perClass/2
// in val/. It is datasettest.MakeImageFolder, kept here for its callers.
func MakeImageFolder(t testing.TB, dir string, perClass, side int) {
	t.Helper()
	datasettest.MakeImageFolder(t, dir, perClass, side)
}

// Python is the interpreter that has Debian's python3-torch.
const Python = "/usr/bin/python3"

// RequireTorch fails the test, saying why, unless Python can import torch,
// torchvision and PIL.
func RequireTorch(t testing.TB) {
	t.Helper()
	if out, err := exec.Command(Python, "-c", "import torch, torchvision, PIL").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import torch, torchvision and PIL (run make deps: it installs python3-torch, python3-torchvision, python3-pil): %v\n%s", Python, err, out)
	}
}

// Rootfs is the Debian root filesystem with python3 that make deps builds
// (images/rootfs/make-rootfs.sh), for images the tests run in Docker.
func Rootfs(t testing.TB) string {
	t.Helper()
	return cached(t, "the Debian rootfs", "rootfs", "bookworm-python3.tar")
}

// ModuleRoot is the repository root, found from the test's directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	t.Fatalf("no go.mod above %s", dir)
	return ""
}

// InOrder reports the first of parts that s lacks, each looked for after
// the previous one; "" when s has them all in order.
func InOrder(s string, parts ...string) string {
	rest := s
	for _, p := range parts {
		i := strings.Index(rest, p)
		if i < 0 {
			return p
		}
		rest = rest[i+len(p):]
	}
	return ""
}

// Sink is an HTTP server that records the CloudEvents posted to it (binary
// or structured mode) and answers 202; check, when set, vets each event.
type Sink struct {
	*httptest.Server
	mu     sync.Mutex
	events []event.Event
}

// NewSink starts a Sink until the test ends; check is called on every
// event (a failed check fails the test).
func NewSink(t testing.TB, check func(event.Event) error) *Sink {
	s := &Sink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if check != nil {
			if err := check(*e); err != nil {
				t.Errorf("sink got a bad event: %v", err)
			}
		}
		s.mu.Lock()
		s.events = append(s.events, *e)
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(s.Close)
	return s
}

// OfType returns the events of one type received so far, in order.
func (s *Sink) OfType(typ string) []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []event.Event
	for _, e := range s.events {
		if e.Type() == typ {
			out = append(out, e)
		}
	}
	return out
}

// WaitHTTP polls url until it answers 200 or timeout passes, then fails
// the test.
func WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %s: %v", url, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Integration marks an integration test (real servers, processes, Python):
// it skips under go test -short, which make test-short runs for a quick
// unit-only loop. make test never passes -short.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped under -short (make test runs it)")
	}
}

// Eventually polls cond every 10 ms until it holds, and fails the test,
// naming what it waited for, once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BuildAgent builds the run agent (vp-agent) into the test's temporary
// folder and returns its path.
func BuildAgent(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "vp-agent")
	cmd := exec.Command("go", "build", "-o", out, "github.com/vision-platform/vp/images/agent/cmd/vp-agent")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building vp-agent: %v\n%s", err, msg)
	}
	return out
}

// Deliver posts e to url in binary mode, as the broker delivers to a
// subscriber, and returns the answer's status, the event it carries (nil
// when it carries none) and, when it carries none, its body.
func Deliver(t testing.TB, url string, e event.Event) (int, *event.Event, string) {
	t.Helper()
	req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), url, e)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Prefer", "reply")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Ce-Id") == "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/cloudevents") {
		return resp.StatusCode, nil, string(b)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	reply, err := cehttp.NewEventFromHTTPResponse(resp)
	if err != nil {
		t.Fatalf("the answer of %s is not a CloudEvent: %v", url, err)
	}
	return resp.StatusCode, reply, ""
}
