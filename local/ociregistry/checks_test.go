package ociregistry

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// registryError is one entry of a registry's JSON error answer.
type registryError struct {
	Code   string `json:"code"`
	Detail any    `json:"detail"`
}

// answer sends a request to the registry and returns its status and error
// codes (with the "descriptor" of each detail, where there is one).
func answer(t *testing.T, method, u, ct string, body []byte) (int, []string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
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
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	if resp.StatusCode >= 400 && method != http.MethodHead {
		var e struct{ Errors []registryError }
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s = %d with a body that is no registry error: %v\n%s", method, u, resp.StatusCode, err, b)
		}
		for _, x := range e.Errors {
			c := x.Code
			if d, ok := x.Detail.(map[string]any); ok && d["descriptor"] != nil {
				c += " " + fmt.Sprint(d["descriptor"])
			}
			codes = append(codes, c)
		}
	}
	return resp.StatusCode, codes
}

func TestNameTooLong(t *testing.T) {
	srv := httptest.NewServer(newRegistry(t, t.TempDir()))
	defer srv.Close()
	long, longest := strings.Repeat("a", 300), strings.Repeat("b", 255)
	tests := []struct {
		desc, method, path string
		wantStatus         int
		wantCodes          []string
	}{
		{"manifest GET", http.MethodGet, "/v2/" + long + "/manifests/latest", 400, []string{"NAME_INVALID"}},
		{"manifest HEAD", http.MethodHead, "/v2/" + long + "/manifests/latest", 400, nil},
		{"manifest PUT", http.MethodPut, "/v2/" + long + "/manifests/latest", 400, []string{"NAME_INVALID"}},
		{"tags", http.MethodGet, "/v2/" + long + "/tags/list", 400, []string{"NAME_INVALID"}},
		{"blob", http.MethodGet, "/v2/" + long + "/blobs/sha256:" + strings.Repeat("0", 64), 400, []string{"NAME_INVALID"}},
		{"upload start", http.MethodPost, "/v2/" + long + "/blobs/uploads/", 400, []string{"NAME_INVALID"}},
		{"nested name", http.MethodGet, "/v2/" + strings.Repeat("ab/", 100) + "c/manifests/latest", 400, []string{"NAME_INVALID"}},
		{"255 characters is still a name", http.MethodGet, "/v2/" + longest + "/manifests/latest", 404, []string{"MANIFEST_UNKNOWN"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var body []byte
			if tc.method == http.MethodPut {
				body = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
			}
			status, codes := answer(t, tc.method, srv.URL+tc.path, "application/vnd.oci.image.manifest.v1+json", body)
			if status != tc.wantStatus {
				t.Errorf("%s %s... = %d, want %d", tc.method, tc.path[:40], status, tc.wantStatus)
			}
			if diff := cmp.Diff(tc.wantCodes, codes); diff != "" {
				t.Errorf("error codes (-want +got):\n%s", diff)
			}
		})
	}
}

type desc struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

func descOf(mediaType string, b []byte) desc {
	return desc{MediaType: mediaType, Digest: fmt.Sprintf("sha256:%x", sha256.Sum256(b)), Size: int64(len(b))}
}

func (d desc) withSize(n int64) desc { d.Size = n; return d }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	ociManifest    = "application/vnd.oci.image.manifest.v1+json"
	ociIndex       = "application/vnd.oci.image.index.v1+json"
	ociConfig      = "application/vnd.oci.image.config.v1+json"
	ociLayer       = "application/vnd.oci.image.layer.v1.tar"
	dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	dockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	dockerConfig   = "application/vnd.docker.container.image.v1+json"
	dockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

func TestManifestDescriptorSizes(t *testing.T) {
	srv := httptest.NewServer(newRegistry(t, t.TempDir()))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	config, layer := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), []byte("hello\n")
	pushBlob(t, addr, "vp/sizes", config)
	pushBlob(t, addr, "vp/sizes", layer)
	manifest := func(mt string, cfg, l desc) []byte {
		return mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": mt, "config": cfg, "layers": []desc{l}})
	}
	index := func(mt string, m desc) []byte {
		return mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": mt, "manifests": []desc{m}})
	}
	cfg, lay := descOf(ociConfig, config), descOf(ociLayer, layer)
	good := manifest(ociManifest, cfg, lay)
	put := func(t *testing.T, ref, mt string, body []byte) (int, []string) {
		return answer(t, http.MethodPut, srv.URL+"/v2/vp/sizes/manifests/"+ref, mt, body)
	}
	if status, codes := put(t, "good", ociManifest, good); status != http.StatusCreated {
		t.Fatalf("PUT of a correct manifest = %d %v, want 201", status, codes)
	}
	goodDesc := descOf(ociManifest, good)

	tests := []struct {
		desc       string
		mediaType  string
		body       []byte
		wantStatus int
		wantCodes  []string
	}{
		{"layer claims 999,999 bytes for 6", ociManifest, manifest(ociManifest, cfg, lay.withSize(999999)), 400, []string{"MANIFEST_INVALID layers[0]"}},
		{"config and layer both wrong", ociManifest, manifest(ociManifest, cfg.withSize(1), lay.withSize(5)), 400, []string{"MANIFEST_INVALID config", "MANIFEST_INVALID layers[0]"}},
		{"docker manifest", dockerManifest, manifest(dockerManifest, descOf(dockerConfig, config), descOf(dockerLayer, layer).withSize(7)), 400, []string{"MANIFEST_INVALID layers[0]"}},
		{"missing blob stays distribution's", ociManifest, manifest(ociManifest, cfg, descOf(ociLayer, []byte("not pushed"))), 400, []string{"MANIFEST_BLOB_UNKNOWN"}},
		{"index child size wrong", ociIndex, index(ociIndex, goodDesc.withSize(goodDesc.Size+1)), 400, []string{"MANIFEST_INVALID manifests[0]"}},
		{"docker list child size wrong", dockerList, index(dockerList, goodDesc.withSize(3)), 400, []string{"MANIFEST_INVALID manifests[0]"}},
		{"index with right sizes", ociIndex, index(ociIndex, goodDesc), 201, nil},
		{"docker manifest with right sizes", dockerManifest, manifest(dockerManifest, descOf(dockerConfig, config), descOf(dockerLayer, layer)), 201, nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			status, codes := put(t, "t", tc.mediaType, tc.body)
			if status != tc.wantStatus {
				t.Errorf("PUT manifest = %d, want %d", status, tc.wantStatus)
			}
			if diff := cmp.Diff(tc.wantCodes, codes); diff != "" {
				t.Errorf("error codes (-want +got):\n%s", diff)
			}
		})
	}
}
