package datasetintake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/strictyaml"
)

// MaxDepth is how many folders above a data object the intake looks for
// the dataset.yaml of its dataset.
const MaxDepth = 8

// outcome is what became of one notification record.
type outcome string

const (
	outcomeIgnored  outcome = "ignored"  // no new content, outside any dataset, or the intake's own manifest
	outcomeWaiting  outcome = "waiting"  // a dataset not complete yet
	outcomeUploaded outcome = "uploaded" // dataset.uploaded posted
	outcomeRejected outcome = "rejected" // dataset.rejected posted
	outcomeUnpacked outcome = "unpacked" // an archive unpacked into its dataset's prefix
	outcomeDone     outcome = "done"     // the same work was done already: nothing posted
)

// object handles one record. The error is the store's or the sink's:
// worth delivering the notification again.
func (f *Function) object(ctx context.Context, o object, a *answer) (outcome, error) {
	if !createsContent(o.Event) || strings.HasSuffix(o.Key, "/") {
		return outcomeIgnored, nil
	}
	if path.Base(o.Key) == dataset.SpecName {
		dir := path.Dir(o.Key)
		if dir == "." {
			return f.reject(ctx, o.Bucket, o.Key, o.VersionID, o.ETag, a, events.FieldError{
				Field: dataset.SpecName, Reason: "at the bucket's root: a dataset lives under a prefix of its own (NAME/dataset.yaml)"})
		}
		return f.complete(ctx, o.Bucket, dir+"/", true, a)
	}
	root, err := f.findRoot(ctx, o.Bucket, o.Key)
	if err != nil {
		return "", err
	}
	if root != "" {
		if o.Key == root+dataset.ManifestName {
			return outcomeIgnored, nil // the intake's own write, coming back
		}
		return f.complete(ctx, o.Bucket, root, false, a)
	}
	if kind, stem, ok := archiveKind(o.Key); ok {
		return f.unpack(ctx, o, kind, stem, a)
	}
	return outcomeIgnored, nil
}

// findRoot is the prefix of the dataset a data object belongs to: the
// nearest folder above it, up to MaxDepth, holding a dataset.yaml; "" for
// none (the bucket's root is never a dataset's prefix).
func (f *Function) findRoot(ctx context.Context, bucket, key string) (string, error) {
	dir := path.Dir(key)
	for i := 0; dir != "." && dir != "/" && i < MaxDepth; i++ {
		_, err := f.store.Stat(ctx, objstore.URI{Bucket: bucket, Key: dir + "/" + dataset.SpecName})
		switch {
		case err == nil:
			return dir + "/", nil
		case !errors.Is(err, objstore.ErrNotFound):
			return "", err
		}
		dir = path.Dir(dir)
	}
	return "", nil
}

// complete posts dataset.uploaded for the dataset at root once it is
// complete: its dataset.yaml is there and valid and, when it declares
// files or bytes, the data objects under root match them. bySpec says the
// notification was of the dataset.yaml itself: only then is an invalid
// one rejected, and only then does a dataset.yaml that declares no counts
// complete the dataset (it is the last object uploaded).
func (f *Function) complete(ctx context.Context, bucket, root string, bySpec bool, a *answer) (outcome, error) {
	unlock, err := f.locks.lock(ctx, bucket+"/"+root)
	if err != nil {
		return "", err
	}
	defer unlock()
	specURI := objstore.URI{Bucket: bucket, Key: root + dataset.SpecName}
	raw, info, err := f.readSpec(ctx, specURI)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return outcomeIgnored, nil // gone since
	case errors.Is(err, objstore.ErrTooLarge) && bySpec:
		return f.reject(ctx, bucket, specURI.Key, info.VersionID, info.ETag, a, events.FieldError{
			Field: dataset.SpecName, Reason: fmt.Sprintf("over %d bytes", maxSpecSize)})
	case errors.Is(err, objstore.ErrTooLarge):
		return outcomeIgnored, nil
	case err != nil:
		return "", err
	}
	spec, perr := dataset.ParseSpec(dataset.SpecName, raw)
	switch {
	case perr != nil && bySpec:
		return f.reject(ctx, bucket, specURI.Key, info.VersionID, info.ETag, a, dataset.SpecProblems(perr)...)
	case perr != nil:
		return outcomeIgnored, nil // rejected when it landed
	case !bySpec && spec.Files == 0 && spec.Bytes == 0:
		return outcomeIgnored, nil // its own landing completes it
	}

	var data []objstore.Info
	var total int64
	var bad []events.FieldError
	for oi, err := range f.store.List(ctx, objstore.URI{Bucket: bucket, Key: root}) {
		if err != nil {
			return "", err
		}
		rel := strings.TrimPrefix(oi.URI.Key, root)
		if strings.HasSuffix(rel, "/") || !dataset.IsDataFile(rel) {
			continue // folder markers, dataset.yaml, manifest.json
		}
		if !fs.ValidPath(rel) {
			bad = append(bad, events.FieldError{Field: oi.URI.Key, Reason: "not a clean path below the dataset's prefix (empty, '.' or '..' elements)"})
			continue
		}
		data = append(data, oi)
		total += oi.Size
	}
	files := len(data) + len(bad)
	var over []events.FieldError
	if spec.Files > 0 && files > spec.Files {
		over = append(over, events.FieldError{Field: specLine(raw, "files"),
			Reason: fmt.Sprintf("files: %d data files declared, %d under %s", spec.Files, files, root)})
	}
	if spec.Bytes > 0 && total > spec.Bytes {
		over = append(over, events.FieldError{Field: specLine(raw, "bytes"),
			Reason: fmt.Sprintf("bytes: %d bytes of data files declared, %d under %s", spec.Bytes, total, root)})
	}
	log := f.log.With().Str("bucket", bucket).Str("prefix", root).Int("files", files).Int64("bytes", total).Logger()
	switch {
	case len(over) > 0:
		return f.reject(ctx, bucket, specURI.Key, info.VersionID, info.ETag, a, over...)
	case files == 0 || !spec.Complete(files, total):
		log.Debug().Int("wantFiles", spec.Files).Int64("wantBytes", spec.Bytes).Msg("dataset not complete yet")
		return outcomeWaiting, nil
	case len(bad) > 0:
		return f.reject(ctx, bucket, specURI.Key, info.VersionID, info.ETag, a, bad...)
	}

	fp := fingerprint(bucket, root, info, data)
	if f.done.has(fp) {
		return outcomeDone, nil
	}
	m, err := f.manifest(ctx, spec, root, data)
	if err != nil {
		return "", err
	}
	mb, err := m.Marshal()
	if err != nil {
		return "", err
	}
	digest := dataset.Digest(mb)
	posted := "ds\x00" + bucket + "\x00" + root + "\x00" + digest + "\x00" + info.ETag + "\x00" + info.VersionID
	if f.done.has(posted) {
		f.done.add(fp)
		return outcomeDone, nil
	}
	if _, err := f.store.Put(ctx, objstore.URI{Bucket: bucket, Key: root + dataset.ManifestName}, bytes.NewReader(mb), int64(len(mb)),
		objstore.WithContentType("application/json")); err != nil {
		return "", fmt.Errorf("writing the manifest: %w", err)
	}
	d := events.DatasetUploadedData{
		DatasetRef: events.DatasetRef{Bucket: bucket, Prefix: root, Digest: digest, Task: spec.Task, Format: spec.Format},
		Name:       spec.Name, Manifest: specURI.Key, VersionID: info.VersionID,
		Files: len(m.Files), Bytes: m.Bytes(), Classes: spec.Classes,
	}
	e, err := events.New(ctx, Source, d)
	if err != nil {
		var ve *events.ValidationError
		if errors.As(err, &ve) {
			return f.reject(ctx, bucket, specURI.Key, info.VersionID, info.ETag, a, ve.Fields...)
		}
		return "", err
	}
	if err := f.send.Send(ctx, e); err != nil {
		return "", fmt.Errorf("posting %s: %w", e.Type(), err)
	}
	f.done.add(fp)
	f.done.add(posted)
	f.emitted.WithLabelValues(events.DatasetUploaded.Short()).Inc()
	a.Events = append(a.Events, e.Type()+" "+e.ID())
	log.Info().Str("id", e.ID()).Str("digest", digest).Msg("dataset uploaded")
	return outcomeUploaded, nil
}

// readSpec reads a dataset.yaml, at most maxSpecSize bytes of it.
func (f *Function) readSpec(ctx context.Context, u objstore.URI) ([]byte, objstore.Info, error) {
	r, info, err := f.store.Get(ctx, u, objstore.WithMaxSize(maxSpecSize))
	if err != nil {
		return nil, info, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return b, info, err
}

// specLine is "dataset.yaml:LINE" of a top-level key of a dataset.yaml.
func specLine(raw []byte, key string) string {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil || len(doc.Content) == 0 {
		return dataset.SpecName
	}
	return fmt.Sprintf("%s:%d", dataset.SpecName, strictyaml.Document{Node: &doc}.Line(key))
}

// fingerprint names a listing of a dataset: its dataset.yaml's version
// and every data object's key, size and ETag. The same listing again
// needs no new manifest.
func fingerprint(bucket, root string, spec objstore.Info, data []objstore.Info) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\n", bucket, root, spec.ETag, spec.VersionID)
	for _, d := range data {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", d.URI.Key, d.Size, d.ETag)
	}
	return "fp\x00" + hex.EncodeToString(h.Sum(nil))
}

// manifest reads every data object (several at once) into the dataset's
// content manifest. An object that changed since the listing is an error:
// the notification is delivered again and sees the new listing.
func (f *Function) manifest(ctx context.Context, spec *dataset.Spec, root string, data []objstore.Info) (*dataset.Manifest, error) {
	files := make([]dataset.File, len(data))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * putParallel)
	for i, d := range data {
		g.Go(func() error {
			r, _, err := f.store.Get(gctx, d.URI, objstore.WithMaxSize(d.Size))
			if err != nil {
				return fmt.Errorf("reading %s: %w", d.URI, err)
			}
			defer r.Close()
			h := sha256.New()
			n, err := io.Copy(h, r)
			if err != nil {
				return fmt.Errorf("reading %s: %w", d.URI, err)
			}
			if n != d.Size {
				return fmt.Errorf("reading %s: %w: %d bytes listed, %d read", d.URI, ErrChanged, d.Size, n)
			}
			files[i] = dataset.File{Path: strings.TrimPrefix(d.URI.Key, root), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return &dataset.Manifest{Version: dataset.ManifestVersion, Task: spec.Task, Format: spec.Format, Files: files}, nil
}

// reject posts dataset.rejected for the object at key (a dataset.yaml or
// an archive) of the given version; etag tells versions apart in an
// unversioned bucket, for the memo.
func (f *Function) reject(ctx context.Context, bucket, key, versionID, etag string, a *answer, reasons ...events.FieldError) (outcome, error) {
	d := events.DatasetRejectedData{Bucket: bucket, Manifest: key, VersionID: versionID, Reasons: reasons}
	e, err := events.New(ctx, Source, d)
	if err != nil {
		return "", fmt.Errorf("making %s: %w", events.DatasetRejected.Short(), err)
	}
	memo := "rej\x00" + e.ID() + "\x00" + etag
	if f.done.has(memo) {
		return outcomeDone, nil
	}
	if err := f.send.Send(ctx, e); err != nil {
		return "", fmt.Errorf("posting %s: %w", e.Type(), err)
	}
	f.done.add(memo)
	f.emitted.WithLabelValues(events.DatasetRejected.Short()).Inc()
	a.Events = append(a.Events, e.Type()+" "+e.ID())
	f.log.Warn().Str("bucket", bucket).Str("key", key).Str("id", e.ID()).Interface("reasons", reasons).Msg("dataset rejected")
	return outcomeRejected, nil
}

// unpack unpacks the archive o into the prefix named after it, next to
// it, after checking all of it; a bad archive is rejected and nothing is
// written. The unpacked objects' own notifications then complete the
// dataset (its dataset.yaml is written last).
func (f *Function) unpack(ctx context.Context, o object, kind, stem string, a *answer) (outcome, error) {
	dir := path.Dir(o.Key)
	if dir == "." {
		dir = ""
	} else {
		dir += "/"
	}
	dst := objstore.URI{Bucket: o.Bucket, Key: dir + stem + "/"}
	memo := "arc\x00" + o.Bucket + "\x00" + o.Key + "\x00" + o.ETag + "\x00" + o.VersionID
	if f.done.has(memo) {
		return outcomeDone, nil
	}
	unlock, err := f.locks.lock(ctx, o.Bucket+"/"+dst.Key)
	if err != nil {
		return "", err
	}
	defer unlock()
	label := path.Base(o.Key)
	l := *f.limits
	rejectArchive := func(reasons ...events.FieldError) (outcome, error) {
		return f.reject(ctx, o.Bucket, o.Key, o.VersionID, o.ETag, a, reasons...)
	}
	if o.Size > l.MaxSize {
		return rejectArchive(events.FieldError{Field: label, Reason: fmt.Sprintf("%d bytes: an archive is at most %d", o.Size, l.MaxSize)})
	}
	file, size, cleanup, err := spool(ctx, f.store, objstore.URI{Bucket: o.Bucket, Key: o.Key}, o.VersionID, l.MaxSize)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return outcomeIgnored, nil
	case errors.Is(err, objstore.ErrTooLarge):
		return rejectArchive(events.FieldError{Field: label, Reason: fmt.Sprintf("an archive is at most %d bytes", l.MaxSize)})
	case err != nil:
		return "", err
	}
	defer cleanup()
	pl, problems := inspect(kind, file, size, l, label)
	if len(problems) > 0 {
		return rejectArchive(problems...)
	}
	planned := map[string]bool{}
	for _, m := range pl.files {
		planned[m.path] = true
	}
	var foreign []string
	n := 0
	for oi, err := range f.store.List(ctx, dst) {
		if err != nil {
			return "", err
		}
		rel := strings.TrimPrefix(oi.URI.Key, dst.Key)
		if strings.HasSuffix(rel, "/") || rel == dataset.ManifestName || planned[rel] {
			continue
		}
		if n++; len(foreign) < 5 {
			foreign = append(foreign, rel)
		}
	}
	if n > 0 {
		return rejectArchive(events.FieldError{Field: label, Reason: fmt.Sprintf(
			"unpacks into %s, which already holds %d objects that are not in the archive (%s): move the archive or those objects",
			dst.Key, n, strings.Join(foreign, ", "))})
	}
	if err := extract(ctx, f.store, file, size, pl, l, dst); err != nil {
		var ae *archiveError
		if errors.As(err, &ae) {
			field := ae.entry
			if field == "" {
				field = label
			}
			return rejectArchive(events.FieldError{Field: field, Reason: ae.err.Error()})
		}
		return "", fmt.Errorf("unpacking %s: %w", o.Key, err)
	}
	f.done.add(memo)
	f.log.Info().Str("bucket", o.Bucket).Str("archive", o.Key).Str("prefix", dst.Key).Int("files", len(pl.files)).
		Int64("bytes", pl.total).Msg("archive unpacked")
	return outcomeUnpacked, nil
}
