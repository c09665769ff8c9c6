package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/vision-platform/vp/images/artifact"
)

// Action is what a push did with one blob.
type Action string

// Blob actions.
const (
	Pushed  Action = "pushed"  // uploaded
	Existed Action = "existed" // the repository had it
	Mounted Action = "mounted" // mounted from another repository of the registry
)

// Reused reports whether the blob was not uploaded.
func (a Action) Reused() bool { return a == Existed || a == Mounted }

// Blob is what happened to one blob.
type Blob struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Action Action `json:"action"`
	From   string `json:"from,omitempty"` // the repository mounted from
}

// Result of a push.
type Result struct {
	Reference   string `json:"reference"` // repo@digest
	Tag         string `json:"tag,omitempty"`
	BytesPushed int64  `json:"bytesPushed"`
	BytesReused int64  `json:"bytesReused"`
	Blobs       []Blob `json:"blobs"`
}

// Publisher pushes to one registry and remembers which repositories hold
// which blobs, so a layer pushed for one framework image is mounted, not
// uploaded again, for the next.
type Publisher struct {
	opts   []remote.Option
	auth   authn.Authenticator
	rt     http.RoundTripper
	mounts string // file of the mount index, "" for none

	mu    sync.Mutex
	index map[string]map[string][]string // registry -> digest -> repositories
}

// Option configures a Publisher.
type Option func(*Publisher) error

// WithMountIndex keeps the blob-to-repository index in file.
func WithMountIndex(file string) Option {
	return func(p *Publisher) error {
		if file == "" {
			return errors.New("mount index: empty file name")
		}
		p.mounts = file
		return nil
	}
}

// WithAuth sets the credentials (anonymous by default).
func WithAuth(a authn.Authenticator) Option {
	return func(p *Publisher) error {
		if a == nil {
			return errors.New("auth: nil authenticator")
		}
		p.auth = a
		return nil
	}
}

// WithTransport sets the HTTP transport.
func WithTransport(rt http.RoundTripper) Option {
	return func(p *Publisher) error {
		if rt == nil {
			return errors.New("transport: nil round tripper")
		}
		p.rt = rt
		return nil
	}
}

// New makes a Publisher.
func New(opts ...Option) (*Publisher, error) {
	p := &Publisher{auth: authn.Anonymous, rt: remote.DefaultTransport, index: map[string]map[string][]string{}}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, err
		}
	}
	if p.mounts != "" {
		b, err := os.ReadFile(p.mounts)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("reading mount index: %w", err)
		default:
			if err := json.Unmarshal(b, &p.index); err != nil {
				return nil, fmt.Errorf("reading mount index %s: %w", p.mounts, err)
			}
		}
	}
	p.opts = []remote.Option{remote.WithAuth(p.auth), remote.WithTransport(p.rt)}
	return p, nil
}

// Push writes a (an image or an index) to ref, a tag or digest reference,
// and reports what each blob took.
func (p *Publisher) Push(ctx context.Context, ref name.Reference, a artifact.Artifact) (*Result, error) {
	repo := ref.Context()
	blobs, err := blobsOf(a)
	if err != nil {
		return nil, fmt.Errorf("listing the blobs of %s: %w", ref, err)
	}
	client, err := p.client(ctx, repo)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if t, ok := ref.(name.Tag); ok {
		res.Tag = t.TagStr()
	}
	for _, b := range blobs {
		exists, err := headBlob(ctx, client, repo, b.digest)
		if err != nil {
			return nil, err
		}
		out := Blob{Digest: b.digest.String(), Size: b.size, Action: Pushed}
		if exists {
			out.Action = Existed
		} else if from := p.mountSource(repo, b.digest); from != "" {
			if ok, err := mount(ctx, client, repo, b.digest, from); err != nil {
				return nil, err
			} else if ok {
				out.Action, out.From = Mounted, from
			}
		}
		if out.Action == Pushed {
			res.BytesPushed += b.size
		} else {
			res.BytesReused += b.size
		}
		res.Blobs = append(res.Blobs, out)
	}
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithJobs(4)}, p.opts...)
	v, err := a.Value()
	if err != nil {
		return nil, err
	}
	if err := remote.Push(ref, v, opts...); err != nil {
		return nil, fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := a.Digest()
	if err != nil {
		return nil, fmt.Errorf("computing the digest of %s: %w", ref, err)
	}
	res.Reference = repo.Digest(d.String()).String()
	if err := p.remember(repo, blobs); err != nil {
		return nil, fmt.Errorf("saving mount index: %w", err)
	}
	return res, nil
}

type blob struct {
	digest v1.Hash
	size   int64
}

// blobsOf lists the layers and configs of an image or index, once each,
// biggest first (the order they are checked in does not matter).
func blobsOf(a artifact.Artifact) ([]blob, error) {
	imgs, _, err := a.Images()
	if err != nil {
		return nil, err
	}
	seen := map[v1.Hash]bool{}
	var out []blob
	for _, im := range imgs {
		m, err := im.Manifest()
		if err != nil {
			return nil, fmt.Errorf("reading manifest: %w", err)
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				out = append(out, blob{d.Digest, d.Size})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].size > out[j].size })
	return out, nil
}

func (p *Publisher) client(ctx context.Context, repo name.Repository) (*http.Client, error) {
	rt, err := transport.NewWithContext(ctx, repo.Registry, p.auth, p.rt, []string{repo.Scope(transport.PushScope)})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", repo.RegistryStr(), err)
	}
	return &http.Client{Transport: rt}, nil
}

func blobURL(repo name.Repository, rest string) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), rest)
}

func headBlob(ctx context.Context, c *http.Client, repo name.Repository, d v1.Hash) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, blobURL(repo, d.String()), nil)
	if err != nil {
		return false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, fmt.Errorf("checking blob %s: %w", d, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("checking blob %s in %s: %s", d, repo, resp.Status)
}

// mount asks the registry to mount d from another repository; true when
// it did (201), false when it answered with an upload session instead.
func mount(ctx context.Context, c *http.Client, repo name.Repository, d v1.Hash, from string) (bool, error) {
	q := url.Values{"mount": {d.String()}, "from": {from}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, blobURL(repo, "uploads/?"+q.Encode()), nil)
	if err != nil {
		return false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, fmt.Errorf("mounting %s from %s: %w", d, from, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		// An upload session was opened instead; cancel it, remote.Write
		// uploads the blob.
		cancelUpload(ctx, c, repo, resp.Header.Get("Location"))
	}
	return resp.StatusCode == http.StatusCreated, nil
}

// cancelUpload deletes the upload session at loc, best effort: a session
// left open expires on its own.
func cancelUpload(ctx context.Context, c *http.Client, repo name.Repository, loc string) {
	if loc == "" {
		return
	}
	u, err := url.Parse(blobURL(repo, ""))
	if err != nil {
		return
	}
	lu, err := u.Parse(loc)
	if err != nil {
		return
	}
	del, err := http.NewRequestWithContext(ctx, http.MethodDelete, lu.String(), nil)
	if err != nil {
		return
	}
	if r, err := c.Do(del); err == nil {
		r.Body.Close()
	}
}

func (p *Publisher) mountSource(repo name.Repository, d v1.Hash) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.index[repo.RegistryStr()][d.String()] {
		if r != repo.RepositoryStr() {
			return r
		}
	}
	return ""
}

func (p *Publisher) remember(repo name.Repository, blobs []blob) error {
	p.mu.Lock()
	reg := p.index[repo.RegistryStr()]
	if reg == nil {
		reg = map[string][]string{}
		p.index[repo.RegistryStr()] = reg
	}
	for _, b := range blobs {
		k := b.digest.String()
		found := false
		for _, r := range reg[k] {
			found = found || r == repo.RepositoryStr()
		}
		if !found {
			reg[k] = append(reg[k], repo.RepositoryStr())
		}
	}
	data, err := json.Marshal(p.index)
	p.mu.Unlock()
	if err != nil || p.mounts == "" {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.mounts), 0o755); err != nil {
		return err
	}
	tmp := p.mounts + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p.mounts)
}
