package wheel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Hasher returns the hex sha256 of a file (a caching one skips unchanged
// files).
type Hasher func(path string) (string, error)

// Fetcher finds the wheel file of a requirement whose sha256 is allowed.
type Fetcher interface {
	Fetch(ctx context.Context, r Requirement) (path, sha256 string, err error)
}

// ErrNotFound is returned when no wheel with an allowed hash is found.
var ErrNotFound = errors.New("no wheel with an allowed hash")

// Wheelhouse is a directory of wheel files.
type Wheelhouse struct {
	Dir  string
	Hash Hasher
}

var _ Fetcher = (*Wheelhouse)(nil)

// Fetch looks for name-version-*.whl files and returns the first whose
// sha256 the requirement allows.
func (w *Wheelhouse) Fetch(_ context.Context, r Requirement) (string, string, error) {
	prefix := wheelPrefix(r.Name, r.Version)
	ents, err := os.ReadDir(w.Dir)
	if err != nil {
		return "", "", err
	}
	var seen []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".whl") || !strings.HasPrefix(strings.ToLower(n), prefix) {
			continue
		}
		p := filepath.Join(w.Dir, n)
		sum, err := w.Hash(p)
		if err != nil {
			return "", "", err
		}
		if allowed(r, sum) {
			return p, sum, nil
		}
		seen = append(seen, n+" sha256="+sum)
	}
	if len(seen) > 0 {
		return "", "", fmt.Errorf("%s==%s: %w in %s; found %s", r.Name, r.Version, ErrNotFound, w.Dir, strings.Join(seen, ", "))
	}
	return "", "", fmt.Errorf("%s==%s: %w: no %s*.whl in %s", r.Name, r.Version, ErrNotFound, prefix, w.Dir)
}

func allowed(r Requirement, sum string) bool { return r.Allows(sum) }

// Allows reports whether the lock pins a wheel with this hex sha256.
func (r Requirement) Allows(sum string) bool {
	for _, h := range r.Hashes {
		if h == sum {
			return true
		}
	}
	return false
}

// Candidates lists the wheel files of the requirement's name and version
// in the wheelhouse, unverified.
func (w *Wheelhouse) Candidates(r Requirement) ([]string, error) {
	prefix := wheelPrefix(r.Name, r.Version)
	ents, err := os.ReadDir(w.Dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".whl") && strings.HasPrefix(strings.ToLower(n), prefix) {
			out = append(out, filepath.Join(w.Dir, n))
		}
	}
	return out, nil
}

// wheelPrefix is the start of the file names of a name and version's
// wheels, escaped as PEP 427 says: runs of -_. in the name become _, and
// - in the version becomes _.
func wheelPrefix(name, version string) string {
	return strings.ToLower(sepRE.ReplaceAllString(name, "_") + "-" + strings.ReplaceAll(version, "-", "_") + "-")
}

// Index is a PEP 691 simple repository (JSON API). Downloads are kept in
// Dir by sha256, so each wheel is fetched once.
type Index struct {
	URL    string
	Dir    string
	Client *http.Client
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
	client := x.Client
	if client == nil {
		client = http.DefaultClient
	}
	base, err := url.Parse(strings.TrimSuffix(x.URL, "/") + "/" + Normalize(r.Name) + "/")
	if err != nil {
		return "", "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String(), nil)
	if err != nil {
		return "", "", err
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
	prefix := wheelPrefix(r.Name, r.Version)
	for _, f := range proj.Files {
		sum := f.Hashes["sha256"]
		if !strings.HasSuffix(f.Filename, ".whl") || !strings.HasPrefix(strings.ToLower(f.Filename), prefix) || !allowed(r, sum) {
			continue
		}
		dst := filepath.Join(x.Dir, sum[:2], sum, f.Filename)
		if _, err := os.Stat(dst); err == nil {
			return dst, sum, nil
		}
		u, err := base.Parse(f.URL)
		if err != nil {
			return "", "", err
		}
		if err := download(ctx, client, u.String(), dst, sum); err != nil {
			return "", "", fmt.Errorf("%s==%s: %w", r.Name, r.Version, err)
		}
		return dst, sum, nil
	}
	return "", "", fmt.Errorf("%s==%s: %w at %s", r.Name, r.Version, ErrNotFound, base)
}

func download(ctx context.Context, client *http.Client, u, dst, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("downloading %s: %s", u, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		tmp.Close()
		return fmt.Errorf("downloading %s: %w", u, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("downloading %s: sha256 %s, the lock allows %s", u, got, want)
	}
	return os.Rename(tmp.Name(), dst)
}
