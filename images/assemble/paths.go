package assemble

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vision-platform/vp/internal/ctxio"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vision-platform/vp/images/imagespec"
)

// The paths of every layer are kept beside the cache, one JSON file per
// layer digest, so the check of paths written twice reads lists, not
// layers, on a warm build.

func (c *Cache) pathsFile(d v1.Hash) string {
	return filepath.Join(c.dir, "paths", d.Algorithm, d.Hex+".json")
}

func (c *Cache) savePaths(d v1.Hash, ps []pathEntry) error {
	b, err := json.Marshal(ps)
	if err != nil {
		return fmt.Errorf("encoding the paths of %s: %w", d, err)
	}
	p := c.pathsFile(d)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("saving the paths of %s: %w", d, err)
	}
	return writeAtomic(p, b)
}

// layerPaths lists what l writes: the list saved when the cache made it,
// or else read from the layer itself (a base image's) and saved.
func (c *Cache) layerPaths(ctx context.Context, l v1.Layer) ([]pathEntry, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, fmt.Errorf("reading layer digest: %w", err)
	}
	b, err := os.ReadFile(c.pathsFile(d))
	if err == nil {
		var ps []pathEntry
		if err := json.Unmarshal(b, &ps); err == nil {
			return ps, nil
		}
		// damaged: list it again
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the paths of %s: %w", d, err)
	}
	ps, err := scanPaths(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("listing layer %s: %w", d, err)
	}
	if err := c.savePaths(d, ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// scanPaths reads the paths of a layer's tar, parent directories included;
// whiteouts are listed as they are (.wh.NAME, .wh..wh..opq).
func scanPaths(ctx context.Context, l v1.Layer) ([]pathEntry, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(ctxio.Reader(ctx, rc))
	seen := map[string]bool{}
	var out []pathEntry
	add := func(p string, dir bool) {
		if !seen[p] {
			seen[p] = true
			out = append(out, pathEntry{Path: p, Dir: dir})
		}
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		p := path.Clean("/" + h.Name)
		if p == "/" {
			continue
		}
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			add(d, true)
		}
		add(p, h.Typeflag == tar.TypeDir)
	}
}

// writer is the layer that writes a path, and whether it is a directory
// there.
type writer struct {
	layer string
	dir   bool
}

// checkPaths refuses an image in which a path is written twice: by two of
// the spec's own layers, or by one of them and the base image, unless the
// spec's overrides list it. A directory may be in any number of layers.
func (b *Builder) checkPaths(ctx context.Context, s *imagespec.Spec, base v1.Image, own []namedLayer) error {
	below, err := b.baseView(ctx, base)
	if err != nil {
		return err
	}
	mine := map[string]writer{}
	for _, l := range own {
		ps, err := b.cache.layerPaths(ctx, l.layer)
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.name, err)
		}
		for _, p := range ps {
			if prev, ok := mine[p.Path]; ok && !(prev.dir && p.Dir) {
				return fmt.Errorf("%w: %s by layer %s and by layer %s", ErrPathConflict, p.Path, prev.layer, l.name)
			}
			if prev, ok := below[p.Path]; ok && !(prev.dir && p.Dir) && !overridden(s.Overrides, p.Path) {
				return fmt.Errorf("%w: %s by layer %s and by %s of the base image (overrides lists the base paths a spec may replace)",
					ErrPathConflict, p.Path, l.name, prev.layer)
			}
			if _, ok := mine[p.Path]; !ok {
				mine[p.Path] = writer{layer: l.name, dir: p.Dir}
			}
		}
	}
	return nil
}

// baseView is the file system of img: every path and the layer that put
// it there last, whiteouts applied.
func (b *Builder) baseView(ctx context.Context, img v1.Image) (map[string]writer, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading the base image's manifest: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading the base image's layers: %w", err)
	}
	view := map[string]writer{}
	for i, l := range layers {
		name := fmt.Sprintf("layer %d", i)
		if i < len(m.Layers) && m.Layers[i].Annotations[LayerNameKey] != "" {
			name = "layer " + m.Layers[i].Annotations[LayerNameKey]
		}
		ps, err := b.cache.layerPaths(ctx, l)
		if err != nil {
			return nil, fmt.Errorf("base image %s: %w", name, err)
		}
		// A layer's whiteouts hide what the layers below it wrote.
		var keep []pathEntry
		for _, p := range ps {
			dir, base := path.Split(p.Path)
			switch {
			case base == ".wh..wh..opq":
				removeBelow(view, path.Clean(dir), false)
			case strings.HasPrefix(base, ".wh."):
				removeBelow(view, path.Join(dir, strings.TrimPrefix(base, ".wh.")), true)
			default:
				keep = append(keep, p)
			}
		}
		for _, p := range keep {
			view[p.Path] = writer{layer: name, dir: p.Dir}
		}
	}
	return view, nil
}

// removeBelow deletes what is below dir in view, and dir itself if self.
func removeBelow(view map[string]writer, dir string, self bool) {
	if self {
		delete(view, dir)
	}
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for p := range view {
		if strings.HasPrefix(p, prefix) {
			delete(view, p)
		}
	}
}

// overridden reports whether p is, or is below, one of overrides.
func overridden(overrides []string, p string) bool {
	for _, o := range overrides {
		if p == o || strings.HasPrefix(p, strings.TrimSuffix(o, "/")+"/") {
			return true
		}
	}
	return false
}
