package commands

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/local/ociregistry"
)

func TestFunctionSpecNames(t *testing.T) {
	specs, err := imagespec.LoadDir(filepath.Join(testsupport.ModuleRoot(t), FunctionSpecs))
	if err != nil {
		t.Fatal(err)
	}
	names := functionSpecNames(specs)
	if slices.Contains(names, "function-base") || !slices.Contains(names, "dead-letter") || !slices.Contains(names, "gpu-runner") {
		t.Errorf("functionSpecNames = %v, want the functions without function-base", names)
	}
}

// fileIn is the content of path in img's layers (the last layer that has
// it), or an error naming it.
func fileIn(img v1.Image, path string) ([]byte, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var found []byte
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				return nil, err
			}
			if strings.TrimPrefix(h.Name, "/") == strings.TrimPrefix(path, "/") {
				if found, err = io.ReadAll(tr); err != nil {
					rc.Close()
					return nil, err
				}
			}
		}
		rc.Close()
	}
	if found == nil {
		return nil, errors.New(path + " is in no layer")
	}
	return found, nil
}

// TestInt_BuildFunctions builds a function's image twice, each time with a
// fresh cache, and pushes it to the embedded registry: the same digest
// both times; an index for amd64 and arm64 of valid images that run the
// function's binary as the non-root user 65532, with this machine's CA
// certificates and the user in /etc/passwd; references by digest in the
// images file.
func TestInt_BuildFunctions(t *testing.T) {
	testsupport.Integration(t)
	root := testsupport.ModuleRoot(t)
	reg, err := ociregistry.New(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	build := func(n int) map[string]string {
		t.Helper()
		file := filepath.Join(dir, "images.json")
		os.Remove(file)
		out, err := run(context.Background(), "", "images", "build-functions", "dead-letter", "--specs", filepath.Join(root, FunctionSpecs),
			"--cache", filepath.Join(dir, "cache", string(rune('a'+n))), "--registry", host+"/vp", "--images-file", file, "--quiet")
		if err != nil {
			t.Fatalf("vp images build-functions: %v\n%s", err, out)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		refs := map[string]string{}
		if err := json.Unmarshal(b, &refs); err != nil {
			t.Fatal(err)
		}
		return refs
	}
	first, second := build(0), build(1)
	if diff := cmp.Diff(first, second); diff != "" {
		t.Fatalf("two builds from fresh caches differ (-first +second):\n%s", diff)
	}
	ref := first["dead-letter"]
	if !strings.HasPrefix(ref, host+"/vp/dead-letter@sha256:") || len(first) != 1 {
		t.Fatalf("images file = %v, want dead-letter by digest in %s/vp", first, host)
	}
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("the pushed index is invalid: %v", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, desc := range m.Manifests {
		platforms = append(platforms, desc.Platform.String())
	}
	if !cmp.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms = %v, want linux/amd64 and linux/arm64", platforms)
	}
	hostCerts, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range m.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != "65532:65532" || !cmp.Equal(cf.Config.Entrypoint, []string{"/ko-app/dead-letter"}) || cf.Architecture != desc.Platform.Architecture {
			t.Errorf("%s: user %q, entrypoint %v, architecture %s; want 65532:65532, /ko-app/dead-letter, %s", desc.Platform, cf.Config.User, cf.Config.Entrypoint, cf.Architecture, desc.Platform.Architecture)
		}
		certs, err := fileIn(img, "/etc/ssl/certs/ca-certificates.crt")
		if err != nil || !bytes.Equal(certs, hostCerts) {
			t.Errorf("%s: the CA certificates are not this machine's: %v", desc.Platform, err)
		}
		passwd, err := fileIn(img, "/etc/passwd")
		if err != nil || !strings.Contains(string(passwd), "nonroot:x:65532:65532:") {
			t.Errorf("%s: /etc/passwd lacks nonroot 65532: %v\n%s", desc.Platform, err, passwd)
		}
		bin, err := fileIn(img, "/ko-app/dead-letter")
		if err != nil || !bytes.HasPrefix(bin, []byte("\x7fELF")) {
			t.Errorf("%s: /ko-app/dead-letter is not an executable: %v", desc.Platform, err)
		}
	}
	if out, err := run(context.Background(), "", "images", "build-functions", "nope", "--specs", filepath.Join(root, FunctionSpecs), "--cache", filepath.Join(dir, "cache", "c")); err == nil || !strings.Contains(err.Error(), "not a function image spec") {
		t.Errorf("build-functions nope = %v\n%s, want an error", err, out)
	}
	if _, err := run(context.Background(), "", "images", "build-functions", "--images-file", filepath.Join(dir, "x.json")); err == nil || !strings.Contains(err.Error(), "--registry") {
		t.Errorf("build-functions --images-file without --registry = %v, want an error naming --registry", err)
	}
}
