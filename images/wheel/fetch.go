package wheel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Fetcher finds the wheel of a requirement whose sha256 the lock pins and
// returns it from a Store: path is the stored copy, hashed as it was
// written there.
type Fetcher interface {
	Fetch(ctx context.Context, r Requirement) (path, sha256 string, err error)
}

// Sums remembers the sha256 of files by their stat (path, size,
// modification and change times, inode), so an unchanged wheel in a
// wheelhouse is not read again. A remembered sum only picks the stored copy
// to install: a stale one can never put other bytes into a layer.
type Sums interface {
	Sum(path string, fi fs.FileInfo) (sum string, ok bool)
	Remember(path string, fi fs.FileInfo, sum string)
}

// Allows reports whether the lock pins a wheel with this hex sha256.
func (r Requirement) Allows(sum string) bool {
	for _, h := range r.Hashes {
		if h == sum {
			return true
		}
	}
	return false
}

// Wheelhouse is a directory of wheel files. A wheel is checked against the
// lock before anything of it is unpacked: it is copied into Store and
// hashed on the way, and kept only when the lock pins its hash.
type Wheelhouse struct {
	Dir   string
	Store *Store
	// Sums, when set, spares reading a wheel whose stat is unchanged and
	// whose copy is in the store.
	Sums Sums
}

var _ Fetcher = (*Wheelhouse)(nil)

// Fetch looks for the requirement's name-version-*.whl files and returns
// the stored copy of the first whose sha256 the requirement allows.
func (w *Wheelhouse) Fetch(ctx context.Context, r Requirement) (string, string, error) {
	if w.Store == nil {
		return "", "", errors.New("wheelhouse: no store")
	}
	cands, err := w.Candidates(r)
	if err != nil {
		return "", "", err
	}
	var seen []string
	for _, p := range cands {
		path, sum, err := w.fetchOne(ctx, r, p)
		switch {
		case err == nil:
			return path, sum, nil
		case errors.Is(err, ErrNotPinned):
			seen = append(seen, filepath.Base(p)+" sha256="+sum)
		default:
			return "", "", err
		}
	}
	if len(seen) > 0 {
		return "", "", fmt.Errorf("%s==%s: %w in %s; found %s", r.Name, r.Version, ErrNotFound, w.Dir, strings.Join(seen, ", "))
	}
	return "", "", fmt.Errorf("%s==%s: %w: no wheel of %s %s in %s", r.Name, r.Version, ErrNotFound, Normalize(r.Name), NormalizeVersion(r.Version), w.Dir)
}

// fetchOne returns the stored copy of the wheel file p, copying it into
// the store (and hashing it) unless its remembered sum names a copy there.
// The stat that keys the sum is taken from the open file before it is
// read, so a file changed while it is read is read again next time.
func (w *Wheelhouse) fetchOne(ctx context.Context, r Requirement, p string) (string, string, error) {
	base := filepath.Base(p)
	f, err := os.Open(p)
	if err != nil {
		return "", "", fmt.Errorf("opening wheel: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", fmt.Errorf("opening wheel: %w", err)
	}
	if w.Sums != nil {
		if sum, ok := w.Sums.Sum(p, fi); ok {
			if !r.Allows(sum) {
				return "", sum, &NotPinnedError{File: base, Sum: sum}
			}
			if stored, ok := w.Store.Lookup(sum, base); ok {
				return stored, sum, nil
			}
		}
	}
	stored, sum, err := w.Store.Add(ctx, f, base, r.Allows)
	if sum != "" && w.Sums != nil {
		w.Sums.Remember(p, fi, sum)
	}
	return stored, sum, err
}

// Candidates lists the wheel files of the requirement's name and version
// in the wheelhouse (see IsWheelOf), unverified.
func (w *Wheelhouse) Candidates(r Requirement) ([]string, error) {
	ents, err := os.ReadDir(w.Dir)
	if err != nil {
		return nil, fmt.Errorf("reading wheelhouse: %w", err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); IsWheelOf(n, r) {
			out = append(out, filepath.Join(w.Dir, n))
		}
	}
	return out, nil
}

// Index is a PEP 691 simple repository (JSON API). Downloads go into
// Store, checked against the pinned hash on the way, so each wheel is
// fetched once.
type Index struct {
	URL    string
	Store  *Store
	Client *http.Client
	// Downloaded, when set, hears of each wheel downloaded (not of those
	// found in the store) once it is stored: its file name and bytes.
	Downloaded func(filename string, size int64)
}

var _ Fetcher = (*Index)(nil)

type simpleProject struct {
	Files []struct {
		Filename string            `json:"filename"`
		URL      string            `json:"url"`
		Hashes   map[string]string `json:"hashes"`
		Yanked   any               `json:"yanked"`
	} `json:"files"`
}

// Fetch asks the index for the project's files and downloads the wheel of
// the pinned version whose sha256 is allowed, checking it on the way.
func (x *Index) Fetch(ctx context.Context, r Requirement) (string, string, error) {
	if x.Store == nil {
		return "", "", errors.New("index: no store")
	}
	client := x.Client
	if client == nil {
		client = http.DefaultClient
	}
	base, err := url.Parse(strings.TrimSuffix(x.URL, "/") + "/" + Normalize(r.Name) + "/")
	if err != nil {
		return "", "", fmt.Errorf("parsing index URL: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String(), nil)
	if err != nil {
		return "", "", fmt.Errorf("asking %s: %w", x.URL, err)
	}
	req.Header.Set("Accept", "application/vnd.pypi.simple.v1+json")
	resp, err := client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("%s==%s: asking %s: %w", r.Name, r.Version, x.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("%s==%s: %s answered %s", r.Name, r.Version, base, resp.Status)
	}
	var proj simpleProject
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&proj); err != nil {
		return "", "", fmt.Errorf("%s==%s: decoding %s (want PEP 691 JSON): %w", r.Name, r.Version, base, err)
	}
	for _, f := range proj.Files {
		sum := f.Hashes["sha256"]
		if !IsWheelOf(f.Filename, r) || !r.Allows(sum) {
			continue
		}
		if p, ok := x.Store.Lookup(sum, f.Filename); ok {
			return p, sum, nil
		}
		u, err := base.Parse(f.URL)
		if err != nil {
			return "", "", fmt.Errorf("%s==%s: parsing %q: %w", r.Name, r.Version, f.URL, err)
		}
		p, err := x.download(ctx, client, u.String(), f.Filename, sum)
		if err != nil {
			return "", "", fmt.Errorf("%s==%s: %w", r.Name, r.Version, err)
		}
		return p, sum, nil
	}
	return "", "", fmt.Errorf("%s==%s: %w at %s", r.Name, r.Version, ErrNotFound, base)
}

func (x *Index) download(ctx context.Context, client *http.Client, u, filename, want string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", u, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("downloading %s: %s", u, resp.Status)
	}
	cr := &countingReader{r: resp.Body}
	p, _, err := x.Store.Add(ctx, cr, filename, func(sum string) bool { return sum == want })
	if err != nil {
		return "", fmt.Errorf("downloading %s (the index gave sha256 %s): %w", u, want, err)
	}
	if x.Downloaded != nil {
		x.Downloaded(filename, cr.n)
	}
	return p, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
