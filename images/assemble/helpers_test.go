package assemble

import (
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/vision-platform/vp/images/publish"
)

// startRegistry serves go-containerregistry's registry until the test
// ends and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func newPublisher(t *testing.T) *publish.Publisher {
	t.Helper()
	return must[*publish.Publisher](t)(publish.New(publish.WithMountIndex(filepath.Join(t.TempDir(), "mounts.json"))))
}

// layoutImage is the digest the OCI layout in dir records for name.
func layoutImage(dir, name string) (v1.Hash, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, d := range m.Manifests {
		if d.Annotations[RefNameAnnotation] == name {
			return d.Digest, nil
		}
	}
	return v1.Hash{}, fmt.Errorf("%s is not in %s", name, dir)
}
