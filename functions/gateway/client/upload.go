package client

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/vision-platform/vp/functions/gateway/api"
)

// UploadProgress is where an upload stands.
type UploadProgress struct {
	Files, FilesDone int
	Bytes, BytesDone int64
	// Skipped are the bytes the store held already (counted in BytesDone).
	Skipped int64
}

// UploadOptions tune Upload.
type UploadOptions struct {
	// Progress, when set, is called as bytes go up (from several
	// goroutines, one at a time).
	Progress func(UploadProgress)
	// Parallel is how many files or parts go up at once (default 4).
	Parallel int
}

// Files lists the files of a dataset folder as an upload names them:
// relative, with forward slashes, dataset.yaml and manifest.json at its
// root left out (the gateway writes the one, the intake the other).
func Files(dir string) ([]api.UploadFile, error) {
	var out []api.UploadFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // links and devices are not data
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "dataset.yaml" || rel == "manifest.json" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, api.UploadFile{Path: rel, Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return out, nil
}

// Upload uploads the folder dir as the dataset req describes (its Files
// are set from dir): each file straight to the store through the
// presigned URLs the gateway gives, large ones in parts, then dataset.yaml,
// after which the platform's intake takes over. It resumes: a file, or a
// part, whose bytes the store holds already (the same MD5) is not sent
// again, so running it again after it was cut short sends only the rest.
func (c *Client) Upload(ctx context.Context, dir string, req api.UploadRequest, o UploadOptions) (api.Upload, error) {
	files, err := Files(dir)
	if err != nil {
		return api.Upload{}, err
	}
	req.Files = files
	up, err := c.Plan(ctx, req)
	if err != nil {
		return up, err
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	p := &progress{cb: o.Progress, p: UploadProgress{Files: len(up.Files)}}
	for _, t := range up.Files {
		p.p.Bytes += t.Size
	}
	p.report()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallel)
	for _, t := range up.Files {
		path := filepath.Join(dir, filepath.FromSlash(t.Path))
		if len(t.Parts) == 0 {
			g.Go(func() error { return c.single(gctx, path, t, up.PartSize, p) })
			continue
		}
		// The parts of one file go up in the same pool; the last one to
		// finish completes the upload.
		var left atomic.Int32
		left.Store(int32(len(t.Parts)))
		for _, part := range t.Parts {
			g.Go(func() error {
				if err := c.part(gctx, path, t, part, up.PartSize, p); err != nil {
					return err
				}
				if left.Add(-1) == 0 {
					var done api.Completed
					if err := c.call(gctx, http.MethodPost, api.Prefix+"/datasets/uploads/complete", nil,
						api.CompleteRequest{Key: t.Key, UploadID: t.UploadID, Size: t.Size}, &done); err != nil {
						return fmt.Errorf("completing %s: %w", t.Path, err)
					}
					p.file()
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return up, err
	}
	if err := c.put(ctx, up.Manifest.URL, strings.NewReader(up.Manifest.Body), int64(len(up.Manifest.Body))); err != nil {
		return up, fmt.Errorf("putting dataset.yaml: %w", err)
	}
	return up, nil
}

// Plan asks the gateway where the files of req go (POST /datasets),
// uploading nothing.
func (c *Client) Plan(ctx context.Context, req api.UploadRequest) (api.Upload, error) {
	var up api.Upload
	return up, c.call(ctx, http.MethodPost, api.Prefix+"/datasets", nil, req, &up)
}

// single puts a file of one part, unless the store holds its bytes.
func (c *Client) single(ctx context.Context, path string, t api.UploadTarget, partSize int64, p *progress) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if t.Uploaded {
		sum, err := etagOf(io.NewSectionReader(f, 0, t.Size), t.Size, partSize)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if sum == t.ETag {
			p.skip(t.Size)
			p.file()
			return nil
		}
		if t.URL == "" {
			return fmt.Errorf("%s: %w (upload another version)", t.Path, ErrDiffers)
		}
	}
	if err := c.put(ctx, t.URL, p.reader(io.NewSectionReader(f, 0, t.Size)), t.Size); err != nil {
		return fmt.Errorf("putting %s: %w", t.Path, err)
	}
	p.file()
	return nil
}

// part puts one part of a file, unless the store holds its bytes.
func (c *Client) part(ctx context.Context, path string, t api.UploadTarget, part api.Part, partSize int64, p *progress) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sec := io.NewSectionReader(f, int64(part.Number-1)*partSize, part.Size)
	if part.ETag != "" {
		sum, err := md5Of(sec)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if sum == part.ETag {
			p.skip(part.Size)
			return nil
		}
		if _, err := sec.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	if err := c.put(ctx, part.URL, p.reader(sec), part.Size); err != nil {
		return fmt.Errorf("putting part %d of %s: %w", part.Number, t.Path, err)
	}
	return nil
}

// put sends size bytes of r to a presigned URL.
func (c *Client) put(ctx context.Context, u string, r io.Reader, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, r)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	resp, err := c.store.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("the store answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// etagOf is the ETag S3 gives an object of size bytes from r: the MD5 of
// its bytes when it went up in one part, else the MD5 of its parts' MD5s
// and the number of parts.
func etagOf(r io.Reader, size, partSize int64) (string, error) {
	if size <= partSize {
		return md5Of(r)
	}
	all := md5.New()
	n := 0
	for ; size > 0; size -= partSize {
		h := md5.New()
		if _, err := io.CopyN(h, r, min(size, partSize)); err != nil {
			return "", err
		}
		all.Write(h.Sum(nil))
		n++
	}
	return fmt.Sprintf("%s-%d", hex.EncodeToString(all.Sum(nil)), n), nil
}

func md5Of(r io.Reader) (string, error) {
	h := md5.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// progress counts an upload's bytes and files.
type progress struct {
	mu sync.Mutex
	cb func(UploadProgress)
	p  UploadProgress
}

func (p *progress) report() {
	if p.cb != nil {
		p.cb(p.p)
	}
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.BytesDone += n
	p.report()
}

func (p *progress) skip(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.BytesDone += n
	p.p.Skipped += n
	p.report()
}

func (p *progress) file() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.FilesDone++
	p.report()
}

// reader counts the bytes read from r. A retried request would count
// them twice; the store's answer decides, not the count.
func (p *progress) reader(r io.Reader) io.Reader { return &counting{r: r, p: p} }

type counting struct {
	r io.Reader
	p *progress
}

func (c *counting) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.p.add(int64(n))
	}
	return n, err
}

// Download gets an artifact into dir (under its name), checking its
// sha256; it returns the file's path. A file there already with the right
// sha256 is kept as it is.
func (c *Client) Download(ctx context.Context, a api.Artifact, dir string) (string, error) {
	if strings.Contains(a.Name, "..") || filepath.IsAbs(a.Name) {
		return "", fmt.Errorf("artifact name %q climbs out of %s", a.Name, dir)
	}
	dst := filepath.Join(dir, filepath.FromSlash(a.Name))
	if f, err := os.Open(dst); err == nil {
		sum, err := sha256Of(f)
		f.Close()
		if err == nil && sum == a.SHA256 {
			return dst, nil
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.store.Do(req)
	if err != nil {
		return "", fmt.Errorf("getting %s: %w", a.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("getting %s: the store answered %s", a.Name, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := newSHA256()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		tmp.Close()
		return "", fmt.Errorf("getting %s: %w", a.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); a.SHA256 != "" && got != a.SHA256 {
		return "", fmt.Errorf("%s: %w: got %s, the run reported %s", a.Name, ErrChecksum, got, a.SHA256)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	return dst, nil
}
