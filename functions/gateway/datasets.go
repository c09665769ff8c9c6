package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"go.yaml.in/yaml/v3"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/strictyaml"
)

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// reserved are the names at a dataset's root the platform writes.
var reserved = map[string]bool{dataset.SpecName: true, "manifest.json": true}

// createUpload answers where each file of a dataset goes: a presigned PUT
// for a file of one part, a multipart upload with a presigned PUT for each
// part otherwise, and dataset.yaml last (it declares the number of files
// and bytes, so the dataset is complete only once all are there, whatever
// the order). Uploads go straight to the store; the intake takes over when
// they are complete. Asked again for the same files (an upload cut short),
// it marks the files and parts the store holds already, so that a client
// uploads only the rest.
func (f *Function) createUpload(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req api.UploadRequest
	if !f.readJSON(w, r, &req, false) {
		return
	}
	spec, probs := f.checkUpload(req)
	if len(probs) > 0 {
		writeError(w, http.StatusUnprocessableEntity, api.CodeInvalid, "the upload cannot be taken: "+joinReasons(probs), probs...)
		return
	}
	mc, ok := f.store.(minioClient)
	if !ok {
		writeError(w, http.StatusNotImplemented, api.CodeUnavailable, ErrMultipart.Error())
		return
	}
	prefix := req.Name + "/"
	if req.Version != "" {
		prefix += req.Version + "/"
	}
	bucket := f.datasets
	have := map[string]objstore.Info{}
	for info, err := range f.store.List(ctx, objstore.URI{Bucket: bucket, Key: prefix}) {
		if err != nil {
			f.storeFailed(w, "listing "+bucket+"/"+prefix, err)
			return
		}
		have[info.URI.Key] = info
	}
	if _, ok := have[prefix+dataset.SpecName]; ok {
		fieldError(w, http.StatusConflict, api.CodeConflict, "name", "%s/%s holds a dataset already (its %s is there); upload another version", bucket, prefix, dataset.SpecName)
		return
	}
	wanted := map[string]bool{}
	for _, file := range req.Files {
		wanted[prefix+file.Path] = true
	}
	var extra []string
	for k := range have {
		if !wanted[k] && k != prefix+"manifest.json" {
			extra = append(extra, strings.TrimPrefix(k, prefix))
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		writeError(w, http.StatusConflict, api.CodeConflict,
			fmt.Sprintf("%s/%s holds files this upload does not list (%s): they would become part of the dataset; upload another version", bucket, prefix, strings.Join(first(extra, 5), ", ")),
			events.FieldError{Field: "files", Reason: fmt.Sprintf("%d files in the store are not listed", len(extra))})
		return
	}
	expiry := f.limits.PresignExpiry
	out := api.Upload{Bucket: bucket, Prefix: prefix, Expires: time.Now().Add(expiry).UTC().Truncate(time.Second), PartSize: f.limits.PartSize}
	for _, file := range req.Files {
		key := prefix + file.Path
		t := api.UploadTarget{Path: file.Path, Key: key, Size: file.Size}
		u := objstore.URI{Bucket: bucket, Key: key}
		if info, ok := have[key]; ok && info.Size == file.Size {
			t.Uploaded, t.ETag = true, strings.Trim(info.ETag, `"`)
		}
		if file.Size <= f.limits.PartSize {
			p, err := f.presigner.PresignPut(ctx, u, expiry)
			if err != nil {
				f.storeFailed(w, "presigning "+key, err)
				return
			}
			t.URL = p.String()
			out.Files = append(out.Files, t)
			continue
		}
		if t.Uploaded {
			out.Files = append(out.Files, t)
			continue
		}
		if err := f.multipart(ctx, mc.Client(), u, &t); err != nil {
			f.storeFailed(w, "starting the multipart upload of "+key, err)
			return
		}
		out.Files = append(out.Files, t)
	}
	body, err := yaml.Marshal(spec)
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "writing dataset.yaml: "+err.Error())
		return
	}
	mu := objstore.URI{Bucket: bucket, Key: prefix + dataset.SpecName}
	p, err := f.presigner.PresignPut(ctx, mu, expiry)
	if err != nil {
		f.storeFailed(w, "presigning "+mu.Key, err)
		return
	}
	out.Manifest = api.Manifest{Key: mu.Key, URL: p.String(), Body: string(body)}
	writeJSON(w, http.StatusOK, out)
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

// checkUpload checks a request and makes its dataset.yaml; problems name
// the request's fields.
func (f *Function) checkUpload(req api.UploadRequest) (*dataset.Spec, []events.FieldError) {
	var probs []events.FieldError
	add := func(field, format string, args ...any) {
		probs = append(probs, events.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if req.Version != "" && !versionRE.MatchString(req.Version) {
		add("version", "%q is not a version (letters, digits, '.', '_', '-'; at most 63)", req.Version)
	}
	switch n := len(req.Files); {
	case n == 0:
		add("files", "list the dataset's files")
	case n > f.limits.MaxFiles:
		add("files", "%d files; an upload takes at most %d", n, f.limits.MaxFiles)
	}
	seen := map[string]bool{}
	var total int64
	maxSize := f.limits.PartSize * maxParts
	for i, file := range req.Files {
		field := fmt.Sprintf("files[%d]", i)
		if p := pathProblem(file.Path); p != "" {
			add(field+".path", "%q %s", file.Path, p)
		} else if seen[file.Path] {
			add(field+".path", "%q is listed twice", file.Path)
		}
		seen[file.Path] = true
		if file.Size < 0 || file.Size > maxSize {
			add(field+".size", "%d is not from 0 to %d bytes (%d parts of %d)", file.Size, maxSize, maxParts, f.limits.PartSize)
		}
		total += max(file.Size, 0)
	}
	spec := &dataset.Spec{Name: req.Name, Task: req.Task, Format: req.Format, Files: len(req.Files), Bytes: total,
		Classes: req.Classes, Retrain: req.Retrain}
	if req.Train != nil {
		spec.Train = &dataset.Train{Model: req.Train.Model,
			Hyperparameters: dataset.TrainHyperparameters(req.Train.Hyperparameters),
			Resources:       dataset.TrainResources(req.Train.Resources)}
	}
	b, err := yaml.Marshal(spec)
	if err != nil {
		add("body", "cannot be written as dataset.yaml: %v", err)
		return nil, probs
	}
	if _, err := dataset.ParseSpec(dataset.SpecName, b); err != nil {
		for _, e := range unjoin(err) {
			msg := e.Error()
			if ye, ok := errors.AsType[*strictyaml.Error](e); ok {
				msg = ye.Reason
			}
			field, reason, ok := strings.Cut(msg, ": ")
			if !ok {
				field, reason = "body", msg
			}
			probs = append(probs, events.FieldError{Field: field, Reason: reason})
		}
	}
	if req.Train != nil && len(probs) == 0 {
		fw, name, _ := strings.Cut(req.Train.Model, "/")
		if m, err := f.catalog.Lookup(fw, name); err != nil {
			add("train.model", "no model %s in the catalog", req.Train.Model)
		} else if !m.Ready() {
			add("train.model", "%s is unavailable: %s", req.Train.Model, m.Reason)
		}
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Field < probs[j].Field })
	return spec, probs
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// pathProblem says why p cannot be a file of a dataset ("" when it can):
// a relative path with forward slashes, no empty, "." or ".." part, not a
// name the platform writes.
func pathProblem(p string) string {
	switch {
	case p == "":
		return "is empty"
	case len(p) > 900:
		return "is longer than 900 bytes"
	case strings.HasPrefix(p, "/"):
		return "is absolute"
	case strings.ContainsAny(p, "\\\x00"):
		return "has a backslash or a NUL"
	case reserved[p]:
		return "is written by the platform"
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return "has an empty, '.' or '..' part"
		}
	}
	if path.Clean(p) != p {
		return "is not a clean path"
	}
	return ""
}

// multipart fills t with a multipart upload of u: the one under way for
// its key when its parts fit (an upload cut short, resumed), else a new
// one, and a presigned PUT for each part the store does not hold.
func (f *Function) multipart(ctx context.Context, c *minio.Client, u objstore.URI, t *api.UploadTarget) error {
	core := minio.Core{Client: c}
	size, partSize := t.Size, f.limits.PartSize
	n := int((size + partSize - 1) / partSize)
	partSizeOf := func(i int) int64 {
		if i < n {
			return partSize
		}
		return size - partSize*int64(n-1)
	}
	done := map[int]string{}
	uploadID := ""
	res, err := core.ListMultipartUploads(ctx, u.Bucket, u.Key, "", "", "", 1000)
	if err != nil {
		return err
	}
	var latest time.Time
	for _, up := range res.Uploads {
		if up.Key == u.Key && up.Initiated.After(latest) {
			uploadID, latest = up.UploadID, up.Initiated
		}
	}
	if uploadID != "" {
		parts, err := listParts(ctx, core, u, uploadID)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if p.PartNumber < 1 || p.PartNumber > n || p.Size != partSizeOf(p.PartNumber) {
				// Another part size: start over.
				uploadID, done = "", map[int]string{}
				break
			}
			done[p.PartNumber] = strings.Trim(p.ETag, `"`)
		}
	}
	if uploadID == "" {
		id, err := core.NewMultipartUpload(ctx, u.Bucket, u.Key, minio.PutObjectOptions{})
		if err != nil {
			return err
		}
		uploadID = id
	}
	signer := c
	if s, ok := f.presigner.(minioClient); ok {
		signer = s.Client()
	}
	t.UploadID = uploadID
	for i := 1; i <= n; i++ {
		p := api.Part{Number: i, Size: partSizeOf(i), ETag: done[i]}
		pu, err := signer.Presign(ctx, http.MethodPut, u.Bucket, u.Key, f.limits.PresignExpiry,
			url.Values{"partNumber": {strconv.Itoa(i)}, "uploadId": {uploadID}})
		if err != nil {
			return err
		}
		p.URL = pu.String()
		t.Parts = append(t.Parts, p)
	}
	return nil
}

func listParts(ctx context.Context, core minio.Core, u objstore.URI, uploadID string) ([]minio.ObjectPart, error) {
	var out []minio.ObjectPart
	marker := 0
	for {
		res, err := core.ListObjectParts(ctx, u.Bucket, u.Key, uploadID, marker, 1000)
		if err != nil {
			return nil, err
		}
		out = append(out, res.ObjectParts...)
		if !res.IsTruncated {
			return out, nil
		}
		marker = res.NextPartNumberMarker
	}
}

// completeUpload completes a multipart upload once the store holds every
// part and they add up to the file's size. Completing one that is complete
// already answers the object.
func (f *Function) completeUpload(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req api.CompleteRequest
	if !f.readJSON(w, r, &req, false) {
		return
	}
	switch {
	case req.Key == "" || pathProblem(req.Key) != "":
		fieldError(w, http.StatusUnprocessableEntity, api.CodeInvalid, "key", "%q is not a key of an upload this gateway gave", req.Key)
		return
	case req.UploadID == "":
		fieldError(w, http.StatusUnprocessableEntity, api.CodeInvalid, "uploadId", "required")
		return
	case req.Size < 0:
		fieldError(w, http.StatusUnprocessableEntity, api.CodeInvalid, "size", "must not be negative")
		return
	}
	mc, ok := f.store.(minioClient)
	if !ok {
		writeError(w, http.StatusNotImplemented, api.CodeUnavailable, ErrMultipart.Error())
		return
	}
	core := minio.Core{Client: mc.Client()}
	u := objstore.URI{Bucket: f.datasets, Key: req.Key}
	parts, err := listParts(ctx, core, u, req.UploadID)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchUpload" {
			if info, serr := f.store.Stat(ctx, u); serr == nil && info.Size == req.Size {
				writeJSON(w, http.StatusOK, api.Completed{Key: req.Key, ETag: strings.Trim(info.ETag, `"`), Size: info.Size})
				return
			}
			fieldError(w, http.StatusNotFound, api.CodeNotFound, "uploadId", "no upload %s of %s under way", req.UploadID, req.Key)
			return
		}
		f.storeFailed(w, "listing the parts of "+req.Key, err)
		return
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].PartNumber < parts[j].PartNumber })
	var sum int64
	var missing []string
	cp := make([]minio.CompletePart, 0, len(parts))
	next := 1
	for _, p := range parts {
		for ; next < p.PartNumber; next++ {
			missing = append(missing, strconv.Itoa(next))
		}
		next = p.PartNumber + 1
		sum += p.Size
		cp = append(cp, minio.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag})
	}
	if len(missing) > 0 || sum != req.Size {
		writeError(w, http.StatusConflict, api.CodeConflict,
			fmt.Sprintf("the parts of %s add up to %d bytes of %d (missing parts: %s); upload the rest first", req.Key, sum, req.Size, orNone(strings.Join(missing, ", "))),
			events.FieldError{Field: "size", Reason: fmt.Sprintf("%d bytes uploaded", sum)})
		return
	}
	info, err := core.CompleteMultipartUpload(ctx, u.Bucket, u.Key, req.UploadID, cp, minio.PutObjectOptions{})
	if err != nil {
		f.storeFailed(w, "completing the upload of "+req.Key, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Completed{Key: req.Key, ETag: strings.Trim(info.ETag, `"`), Size: sum})
}

func (f *Function) listDatasets(w http.ResponseWriter, r *http.Request) {
	ds, err := f.ledger.Datasets(r.Context())
	if err != nil {
		f.storeFailed(w, "listing datasets", err)
		return
	}
	if ds == nil {
		ds = []ledger.DatasetStatus{}
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Updated.After(ds[j].Updated) })
	writeJSON(w, http.StatusOK, api.DatasetList{Datasets: ds})
}
