package ociregistry

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/vision-platform/vp/internal/testsupport"
)

// uploadDirs lists the upload directories the registry keeps on disk.
func uploadDirs(t *testing.T, r *Registry) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(r.repositoriesRoot(), "vp", "*", uploadsDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestInt_PurgesAbandonedUploads: empty upload sessions and abandoned
// uploads disappear from disk once older than the purge age, while an
// upload that keeps receiving bytes for longer than that age completes,
// and pushed images stay.
func TestInt_PurgesAbandonedUploads(t *testing.T) {
	testsupport.Integration(t)
	const age = 3 * time.Second
	r := newRegistry(t, t.TempDir(), WithUploadPurgeAge(age), WithUploadPurgeInterval(100*time.Millisecond))
	addr, _ := serveRegistry(t, r)

	img, err := random.Image(1<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(parseRef(t, addr+"/vp/kept:v1"), img); err != nil {
		t.Fatalf("push: %v", err)
	}

	const empty, abandoned = 20, 3
	for i := 0; i < empty; i++ {
		startUpload(t, addr, "vp/empty")
	}
	for i := 0; i < abandoned; i++ {
		do(t, http.MethodPatch, startUpload(t, addr, "vp/abandoned"), "application/octet-stream", bytes.NewReader(randomBytes(t, 1<<20)), http.StatusAccepted)
	}
	if got := len(uploadDirs(t, r)); got != empty+abandoned {
		t.Fatalf("upload directories on disk = %d, want %d before the purge", got, empty+abandoned)
	}

	// An upload that sends a chunk every 300 ms for twice the purge age.
	active := startUpload(t, addr, "vp/active")
	h := sha256.New()
	for start := time.Now(); time.Since(start) < 2*age; {
		chunk := randomBytes(t, 1<<10)
		if _, err := h.Write(chunk); err != nil {
			t.Fatal(err)
		}
		resp := do(t, http.MethodPatch, active, "application/octet-stream", bytes.NewReader(chunk), http.StatusAccepted)
		active = location(t, addr, resp)
		time.Sleep(300 * time.Millisecond)
	}
	finishUpload(t, addr, active, fmt.Sprintf("sha256:%x", h.Sum(nil)))

	testsupport.Eventually(t, 30*time.Second, "the abandoned uploads to be purged", func() bool {
		return len(uploadDirs(t, r)) == 0
	})
	for _, repo := range []string{"empty", "abandoned"} {
		entries, err := os.ReadDir(filepath.Join(r.repositoriesRoot(), "vp", repo, uploadsDir))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Errorf("vp/%s/_uploads holds %d entries after the purge, want 0", repo, len(entries))
		}
	}
	got, err := remote.Image(parseRef(t, addr+"/vp/kept:v1"))
	if err != nil {
		t.Fatalf("pull after the purge: %v", err)
	}
	if err := validate.Image(got); err != nil {
		t.Errorf("image after the purge: %v", err)
	}
}
