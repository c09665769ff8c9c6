package agent

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// ManifestName is the object, under a dataset version's prefix, that lists
// every file of the version with its size and sha256. The dataset's digest
// is the sha256 of this object, so it covers every file.
const ManifestName = "manifest.json"

// Manifest lists the files of one dataset version.
type Manifest struct {
	Version int            `json:"version"`
	Task    string         `json:"task,omitempty"`
	Format  string         `json:"format,omitempty"`
	Files   []ManifestFile `json:"files"`
}

// ManifestFile is one file of a dataset, its path relative to the prefix.
// VersionID, when the bucket is versioned and the intake recorded it, pins
// the object version the file is read at; the manifest's digest covers it.
type ManifestFile struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	VersionID string `json:"versionId,omitempty"`
}

// ParseManifest decodes and checks a manifest: relative, clean, unique
// paths, sizes and sha256s present.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		switch {
		case f.Path == "" || path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == ".." || strings.HasPrefix(f.Path, "../"):
			return nil, fmt.Errorf("manifest files[%d]: path %q is not a clean relative path", i, f.Path)
		case seen[f.Path]:
			return nil, fmt.Errorf("manifest files[%d]: %q is listed twice", i, f.Path)
		case f.Size < 0:
			return nil, fmt.Errorf("manifest files[%d]: negative size", i)
		case len(f.SHA256) != 64:
			return nil, fmt.Errorf("manifest files[%d]: sha256 %q is not 64 hex digits", i, f.SHA256)
		}
		seen[f.Path] = true
	}
	return &m, nil
}
