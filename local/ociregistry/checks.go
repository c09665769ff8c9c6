package ociregistry

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/reference"
	"github.com/gorilla/mux"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifestBytes is the largest manifest distribution takes (its own
// limit); a larger one is left for distribution to refuse.
const maxManifestBytes = 4 << 20

// router matches requests as distribution's own router does.
var router = v2.Router()

// named is the set of routes whose path carries a repository name.
var named = map[string]bool{
	v2.RouteNameManifest: true, v2.RouteNameTags: true, v2.RouteNameBlob: true,
	v2.RouteNameBlobUpload: true, v2.RouteNameBlobUploadChunk: true,
}

// check answers the requests distribution gets wrong and reports whether
// the request should go on to distribution:
//   - a repository name over 255 characters, which distribution answers
//     with 500, gets 400 NAME_INVALID;
//   - a manifest PUT whose descriptors claim sizes other than those of the
//     blobs stored here gets 400 MANIFEST_INVALID naming each one.
func (r *Registry) check(w http.ResponseWriter, req *http.Request) bool {
	// Only a long path can hold a name that is too long.
	if req.Method != http.MethodPut && len(req.URL.Path) <= len("/v2/")+reference.RepositoryNameTotalLengthMax {
		return true
	}
	var m mux.RouteMatch
	if !router.Match(req, &m) || m.Route == nil || !named[m.Route.GetName()] {
		return true
	}
	name := m.Vars["name"]
	if _, err := reference.WithName(name); err != nil {
		r.fail(w, errcode.ErrorCodeNameInvalid.WithMessage(
			fmt.Sprintf("invalid repository name: %v", err)).WithDetail(map[string]any{"name": name}))
		return false
	}
	if req.Method == http.MethodPut && m.Route.GetName() == v2.RouteNameManifest {
		return r.checkManifest(w, req)
	}
	return true
}

// descriptorField names the field that holds the i-th of References() of a
// manifest of mediaType, and reports whether the media type is checked.
func descriptorField(mediaType string, i int) (string, bool) {
	switch mediaType {
	case ocispec.MediaTypeImageManifest, schema2.MediaTypeManifest:
		if i == 0 {
			return "config", true
		}
		return fmt.Sprintf("layers[%d]", i-1), true
	case ocispec.MediaTypeImageIndex, manifestlist.MediaTypeManifestList:
		return fmt.Sprintf("manifests[%d]", i), true
	}
	return "", false
}

// checkManifest compares the size each descriptor of a pushed manifest or
// index claims with the size of the blob stored under its digest. A blob
// that is not stored is left to distribution (MANIFEST_BLOB_UNKNOWN), and
// so is anything it cannot parse.
func (r *Registry) checkManifest(w http.ResponseWriter, req *http.Request) bool {
	ct := req.Header.Get("Content-Type")
	mediaType, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true
	}
	if _, ok := descriptorField(mediaType, 0); !ok {
		return true
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxManifestBytes+1))
	rest := io.Reader(req.Body)
	if err != nil {
		rest = errReader{err}
	}
	req.Body = readCloser{Reader: io.MultiReader(bytes.NewReader(body), rest), Closer: req.Body}
	if err != nil || len(body) > maxManifestBytes {
		return true
	}
	mf, _, err := distribution.UnmarshalManifest(ct, body)
	if err != nil {
		return true
	}
	var errs errcode.Errors
	for i, d := range mf.References() {
		if d.Digest.Validate() != nil {
			continue
		}
		stored, err := r.stat.Stat(req.Context(), d.Digest)
		if err != nil || stored.Size == d.Size {
			continue
		}
		field, _ := descriptorField(mediaType, i)
		errs = append(errs, errcode.ErrorCodeManifestInvalid.WithMessage(
			fmt.Sprintf("manifest invalid: %s (%s) claims %d bytes, the stored blob has %d", field, d.Digest, d.Size, stored.Size)).
			WithDetail(map[string]any{"descriptor": field, "digest": d.Digest.String(), "size": d.Size, "storedSize": stored.Size}))
	}
	if len(errs) > 0 {
		r.fail(w, errs)
		return false
	}
	return true
}

// fail answers with registry errors, as distribution does.
func (r *Registry) fail(w http.ResponseWriter, err error) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if werr := errcode.ServeJSON(w, err); werr != nil {
		r.log.WithError(werr).Warn("answering a refused request")
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
