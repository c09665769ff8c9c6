package ociregistry

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/vision-platform/vp/internal/testsupport"
)

// guard bounds how long a test waits for the server to close a connection;
// a connection still open then is a failure, not a slow machine.
const guard = 30 * time.Second

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// waitClosed reads from c until the server closes it.
func waitClosed(t *testing.T, c net.Conn, r io.Reader, what string) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, r)
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: connection still open after %s", what, guard)
	}
}

// location resolves an upload's Location header against the registry.
func location(t *testing.T, addr string, resp *http.Response) string {
	t.Helper()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return (&url.URL{Scheme: "http", Host: addr}).ResolveReference(loc).String()
}

func do(t *testing.T, method, u, ct string, body io.Reader, want int) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, u, resp.StatusCode, b, want)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

// startUpload opens an upload session and returns its URL.
func startUpload(t *testing.T, addr, repo string) string {
	t.Helper()
	return location(t, addr, do(t, http.MethodPost, "http://"+addr+"/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted))
}

// finishUpload completes an upload with the blob's digest.
func finishUpload(t *testing.T, addr, upload, digest string) {
	t.Helper()
	u, err := url.Parse(upload)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	do(t, http.MethodPut, u.String(), "", nil, http.StatusCreated)
}

// pushBlob uploads data to repo in one PUT and returns its digest.
func pushBlob(t *testing.T, addr, repo string, data []byte) string {
	t.Helper()
	upload := startUpload(t, addr, repo)
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	u, err := url.Parse(upload)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	do(t, http.MethodPut, u.String(), "application/octet-stream", bytes.NewReader(data), http.StatusCreated)
	return digest
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInt_IdleConnectionsClosed: a keep-alive connection waiting for its
// next request, and one that never sends a request, are both closed.
func TestInt_IdleConnectionsClosed(t *testing.T) {
	testsupport.Integration(t)
	addr, _ := serve(t, t.TempDir(), WithIdleTimeout(500*time.Millisecond), WithReadHeaderTimeout(500*time.Millisecond))

	t.Run("keep-alive after a request", func(t *testing.T) {
		c := dial(t, addr)
		if _, err := io.WriteString(c, "GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("GET /v2/ = %d (close %t), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
		waitClosed(t, c, br, "idle keep-alive connection")
	})
	t.Run("no request at all", func(t *testing.T) {
		c := dial(t, addr)
		waitClosed(t, c, c, "connection that sent nothing")
	})
}

// TestInt_StalledUploadCut: a PATCH that stops sending its body is cut
// after the progress timeout, though the connection is far from idle or
// header timeouts.
func TestInt_StalledUploadCut(t *testing.T) {
	testsupport.Integration(t)
	addr, _ := serve(t, t.TempDir(), WithProgressTimeout(time.Second), WithIdleTimeout(time.Hour), WithReadHeaderTimeout(time.Hour))
	upload, err := url.Parse(startUpload(t, addr, "vp/stalled"))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	if _, err := fmt.Fprintf(c, "PATCH %s HTTP/1.1\r\nHost: registry\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n0123456789", upload.RequestURI()); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c, c, "PATCH that stopped sending")
}

// TestInt_SlowSteadyUploadSucceeds: an upload that keeps sending, slowly,
// for several times the progress and idle timeouts completes: the deadline
// moves with progress instead of bounding the whole request.
func TestInt_SlowSteadyUploadSucceeds(t *testing.T) {
	testsupport.Integration(t)
	addr, _ := serve(t, t.TempDir(), WithProgressTimeout(time.Second), WithIdleTimeout(time.Second), WithReadHeaderTimeout(time.Second))
	data := randomBytes(t, 30<<10)
	upload := startUpload(t, addr, "vp/slow")
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(data); i += 1 << 10 {
			time.Sleep(100 * time.Millisecond) // 3 s in all
			if _, err := pw.Write(data[i : i+1<<10]); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	resp := do(t, http.MethodPatch, upload, "application/octet-stream", pr, http.StatusAccepted)
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	finishUpload(t, addr, location(t, addr, resp), digest)
	got := do(t, http.MethodGet, "http://"+addr+"/v2/vp/slow/blobs/"+digest, "", nil, http.StatusOK)
	b, err := io.ReadAll(got.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, data) {
		t.Errorf("blob read back: %d bytes, differing from the %d sent", len(b), len(data))
	}
}

// TestInt_Downloads: a client that stops reading a blob loses its
// connection after the progress timeout; one that reads slowly but
// steadily gets the whole blob.
func TestInt_Downloads(t *testing.T) {
	testsupport.Integration(t)
	r := newRegistry(t, t.TempDir(), WithProgressTimeout(time.Second), WithIdleTimeout(time.Hour), WithReadHeaderTimeout(time.Hour))
	var mu sync.Mutex
	closed := map[string]bool{}
	r.state = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			mu.Lock()
			closed[c.RemoteAddr().String()] = true
			mu.Unlock()
		}
	}
	addr, _ := serveRegistry(t, r)
	const size = 16 << 20 // far beyond what the socket buffers below hold
	data := randomBytes(t, size)
	digest := pushBlob(t, addr, "vp/big", data)

	get := func(t *testing.T) (*net.TCPConn, *http.Response) {
		c := dial(t, addr)
		if err := c.SetReadBuffer(64 << 10); err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(c, "GET /v2/vp/big/blobs/%s HTTP/1.1\r\nHost: registry\r\n\r\n", digest); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET blob = %d, want 200", resp.StatusCode)
		}
		return c, resp
	}

	t.Run("stalled", func(t *testing.T) {
		c, resp := get(t)
		testsupport.Eventually(t, guard, "the server to close a download its client stopped reading", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return closed[c.LocalAddr().String()]
		})
		if err := c.SetReadDeadline(time.Now().Add(guard)); err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil || n >= size {
			t.Errorf("reading the cut download: %d bytes, err %v; want fewer than %d and an error", n, err, size)
		}
	})
	t.Run("slow but steady", func(t *testing.T) {
		_, resp := get(t)
		h := sha256.New()
		for {
			n, err := io.CopyN(h, resp.Body, 256<<10)
			if err == io.EOF && n == 0 {
				break
			}
			if err != nil && err != io.EOF {
				t.Fatalf("slow download: %v", err)
			}
			time.Sleep(50 * time.Millisecond) // about 3 s in all
		}
		if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != digest {
			t.Errorf("slow download digest = %s, want %s", got, digest)
		}
	})
}
