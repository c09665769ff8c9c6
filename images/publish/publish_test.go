package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/vision-platform/vp/images/artifact"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/local/ociregistry"
)

// dockerRegistry runs Debian's docker-registry (CNCF distribution) as a
// process of its own.
func dockerRegistry(t *testing.T) string {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("Debian's docker-registry is not installed (%v): run make deps", err)
	}
	dir := t.TempDir()
	addr := testsupport.FreeAddr(t)
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cmd.Process.Kill(); err != nil {
			t.Errorf("stopping docker-registry: %v", err)
		}
		// Killed on purpose: Wait reports the signal as an *exec.ExitError.
		var exit *exec.ExitError
		if err := cmd.Wait(); err != nil && !errors.As(err, &exit) {
			t.Errorf("waiting for docker-registry: %v", err)
		}
	})
	testsupport.WaitHTTP(t, "http://"+addr+"/v2/", 15*time.Second)
	return addr
}

func registries(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"go-containerregistry": func(t *testing.T) string {
			s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
			t.Cleanup(s.Close)
			return s.Listener.Addr().String()
		},
		"embedded distribution": func(t *testing.T) string {
			h, err := ociregistry.New(context.Background(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			s := httptest.NewServer(h)
			t.Cleanup(s.Close)
			return s.Listener.Addr().String()
		},
		"debian docker-registry": dockerRegistry,
	}
}

func size(t *testing.T, l v1.Layer) int64 {
	t.Helper()
	s, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestInt_PushReusesAndMounts(t *testing.T) {
	testsupport.Integration(t)
	for regName, start := range registries(t) {
		t.Run(regName, func(t *testing.T) {
			addr := start(t)
			ctx := context.Background()
			base, err := random.Image(200<<10, 2)
			if err != nil {
				t.Fatal(err)
			}
			extra, err := random.Layer(50<<10, "application/vnd.oci.image.layer.v1.tar+gzip")
			if err != nil {
				t.Fatal(err)
			}
			framework, err := mutate.AppendLayers(base, extra)
			if err != nil {
				t.Fatal(err)
			}
			baseLayers, err := base.Layers()
			if err != nil {
				t.Fatal(err)
			}
			var baseBytes int64
			for _, l := range baseLayers {
				baseBytes += size(t, l)
			}
			ref := func(s string) name.Reference { return must[name.Reference](t)(name.ParseReference(s)) }
			p, err := New(WithMountIndex(filepath.Join(t.TempDir(), "mounts.json")))
			if err != nil {
				t.Fatal(err)
			}
			refA := ref(addr + "/vp/base:latest")
			r1, err := p.Push(ctx, refA, artifact.FromImage(base))
			if err != nil {
				t.Fatalf("Push(base) = %v", err)
			}
			cfgA := must[[]byte](t)(base.RawConfigFile())
			if r1.BytesReused != 0 || r1.BytesPushed != baseBytes+int64(len(cfgA)) {
				t.Errorf("first push: pushed %d reused %d; want %d and 0", r1.BytesPushed, r1.BytesReused, baseBytes+int64(len(cfgA)))
			}
			// The framework image shares the base layers: mounted, not uploaded.
			refB := ref(addr + "/vp/timm:latest")
			r2, err := p.Push(ctx, refB, artifact.FromImage(framework))
			if err != nil {
				t.Fatalf("Push(framework) = %v", err)
			}
			cfgB := must[[]byte](t)(framework.RawConfigFile())
			if r2.BytesReused != baseBytes || r2.BytesPushed != size(t, extra)+int64(len(cfgB)) {
				t.Errorf("second push: pushed %d reused %d; want %d and %d (%+v)", r2.BytesPushed, r2.BytesReused, size(t, extra)+int64(len(cfgB)), baseBytes, r2.Blobs)
			}
			mounted := 0
			for _, b := range r2.Blobs {
				if b.Action == Mounted && b.From == "vp/base" {
					mounted++
				}
			}
			// go-containerregistry's registry keeps one blob store for all
			// repositories, so there the base layers already exist.
			if regName != "go-containerregistry" && mounted != len(baseLayers) {
				t.Errorf("mounted %d blobs from vp/base, want %d: %+v", mounted, len(baseLayers), r2.Blobs)
			}
			// Again: nothing to push.
			r3, err := p.Push(ctx, refB, artifact.FromImage(framework))
			if err != nil {
				t.Fatalf("third Push(framework) = %v", err)
			}
			if r3.BytesPushed != 0 {
				t.Errorf("third push: pushed %d; want 0", r3.BytesPushed)
			}
			got, err := remote.Image(refB)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(got); err != nil {
				t.Errorf("pulled image: %v", err)
			}
			if d := must[v1.Hash](t)(framework.Digest()); r2.Reference != refB.Context().Digest(d.String()).String() {
				t.Errorf("reference = %s", r2.Reference)
			}
			// An index of two platforms.
			idx := mutate.AppendManifests(empty.Index,
				mutate.IndexAddendum{Add: base, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
				mutate.IndexAddendum{Add: framework, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
			refI := ref(addr + "/vp/multi:latest")
			ri, err := p.Push(ctx, refI, artifact.FromIndex(idx))
			if err != nil {
				t.Fatalf("Push(index) = %v", err)
			}
			pulled, err := remote.Index(refI)
			if err != nil {
				t.Fatalf("pulling the index: %v", err)
			}
			if got, want := must[v1.Hash](t)(pulled.Digest()), must[v1.Hash](t)(idx.Digest()); got != want || ri.Reference != refI.Context().Digest(want.String()).String() {
				t.Errorf("pushed index %s (reference %s), want %s", got, ri.Reference, want)
			}

		})
	}
}
