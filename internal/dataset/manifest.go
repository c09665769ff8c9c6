package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// ManifestName is the object, at the root of a dataset version's prefix,
// that lists every data file of the version with its size and sha256. The
// dataset's digest is the digest of this object, so it covers every file.
const ManifestName = "manifest.json"

// ManifestVersion is the version of the manifest format this package
// reads and writes.
const ManifestVersion = 1

// Manifest lists the data files of one dataset version.
type Manifest struct {
	// Version is the format's version, ManifestVersion.
	Version int `json:"version"`
	// Task and Format are the dataset's, as its dataset.yaml says.
	Task   string `json:"task,omitempty"`
	Format string `json:"format,omitempty"`
	// Files are the data files, sorted by path in a marshalled manifest.
	Files []File `json:"files"`
}

// File is one data file of a dataset, its path relative to the prefix.
type File struct {
	// Path is relative to the prefix, with slashes.
	Path string `json:"path"`
	// Size is in bytes.
	Size int64 `json:"size"`
	// SHA256 is the hex sha256 of the content, lower-case.
	SHA256 string `json:"sha256"`
	// VersionID, when the bucket is versioned and the intake recorded it,
	// pins the object version the file is read at (the digest covers it).
	VersionID string `json:"versionId,omitempty"`
}

// ParseManifest decodes and checks a manifest: version 1, no unknown
// fields, and files with clean, relative, unique paths, sizes of at least
// 0 and sha256s of 64 lower-case hex digits. Every problem is named; the
// error wraps ErrInvalidManifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w: %w", ErrInvalidManifest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decoding manifest: %w: data after the manifest object", ErrInvalidManifest)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *Manifest) check() error {
	var problems []string
	if m.Version != ManifestVersion {
		problems = append(problems, fmt.Sprintf("version %d is not %d", m.Version, ManifestVersion))
	}
	seen := make(map[string]bool, len(m.Files))
	for i, f := range m.Files {
		at := fmt.Sprintf("files[%d]", i)
		switch {
		case f.Path == "." || !fs.ValidPath(f.Path):
			problems = append(problems, fmt.Sprintf("%s: path %q is not a clean relative path", at, f.Path))
		case f.Path == ManifestName:
			problems = append(problems, fmt.Sprintf("%s: the manifest cannot list itself", at))
		case seen[f.Path]:
			problems = append(problems, fmt.Sprintf("%s: %q is listed twice", at, f.Path))
		}
		seen[f.Path] = true
		if f.Size < 0 {
			problems = append(problems, fmt.Sprintf("%s: negative size %d", at, f.Size))
		}
		if !isHex64(f.SHA256) {
			problems = append(problems, fmt.Sprintf("%s: sha256 %q is not 64 lower-case hex digits", at, f.SHA256))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("checking manifest: %w: %s", ErrInvalidManifest, strings.Join(problems, "; "))
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Marshal encodes the manifest canonically: version 1 (a zero Version is
// taken as 1), files sorted by path, fields in a fixed order, two-space
// indent and a final newline, so that the same content always gives the
// same bytes, and so the same Digest. It refuses a manifest ParseManifest
// would refuse.
func (m *Manifest) Marshal() ([]byte, error) {
	c := *m
	if c.Version == 0 {
		c.Version = ManifestVersion
	}
	c.Files = slices.Clone(m.Files)
	if c.Files == nil {
		c.Files = []File{}
	}
	slices.SortFunc(c.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	if err := c.check(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	return buf.Bytes(), nil
}

// Bytes is the total size of the files the manifest lists.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Digest is the digest of a manifest's bytes, "sha256:<64 hex>": the
// digest of the dataset version (events.DatasetRef.Digest).
func Digest(manifest []byte) string {
	sum := sha256.Sum256(manifest)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ManifestOf is the marshalled manifest of the data files under dir on
// disk, and its digest: what the intake writes for the same files.
func ManifestOf(ctx context.Context, dir string) ([]byte, string, error) {
	m, err := BuildManifest(ctx, os.DirFS(dir), "", "")
	if err != nil {
		return nil, "", err
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, "", err
	}
	return b, Digest(b), nil
}

// BuildManifest hashes every data file of fsys (everything but the root's
// dataset.yaml and manifest.json; links to files are read through, links
// to folders skipped) into a manifest for task and format.
// Marshal it for the bytes to store and Digest those.
func BuildManifest(ctx context.Context, fsys fs.FS, task, format string) (*Manifest, error) {
	m := &Manifest{Version: ManifestVersion, Task: task, Format: format, Files: []File{}}
	buf := make([]byte, 256<<10)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !IsDataFile(p) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if info, err := fileInfo(fsys, p, d); err != nil {
			return err
		} else if info.IsDir() {
			return nil // a link to a folder, which the walk does not follow
		}
		f, err := hashFile(fsys, p, buf)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("building manifest: %w", err)
	}
	slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return m, nil
}

func hashFile(fsys fs.FS, p string, buf []byte) (File, error) {
	r, err := fsys.Open(p)
	if err != nil {
		return File{}, err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, buf)
	if err != nil {
		return File{}, fmt.Errorf("reading %s: %w", p, err)
	}
	return File{Path: p, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
