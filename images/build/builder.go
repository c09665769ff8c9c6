package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/vision-platform/vp/images/spec"
)

// Annotation and label keys the builder sets.
const (
	RefNameAnnotation = "org.opencontainers.image.ref.name"
	FrameworkLabel    = "dev.visionplatform.framework"
	FamiliesLabel     = "dev.visionplatform.families"
	LayerNameKey      = "dev.visionplatform.layer"
)

// Event reports progress: a layer starting, cached, or built.
type Event struct {
	Spec, Layer, Platform string
	Phase                 string // "cached", "building", "progress", "built"
	Size                  int64  // compressed bytes when built or cached; uncompressed bytes so far in progress
}

// Builder builds specs into images in its cache's OCI layout.
type Builder struct {
	cache    *Cache
	specs    map[string]*spec.Spec
	epoch    time.Time
	goTool   string
	progress func(Event)
	remote   []remote.Option
	wheelDir string

	mu      sync.Mutex
	built   map[string]*Result
	cleanup []func()
}

// Option configures a Builder.
type Option func(*Builder) error

// WithEpoch sets the time written into every mtime and the image config
// (default: SOURCE_DATE_EPOCH, else 0).
func WithEpoch(t time.Time) Option { return func(b *Builder) error { b.epoch = t.UTC(); return nil } }

// WithProgress reports each layer as it is taken from cache or built.
func WithProgress(f func(Event)) Option { return func(b *Builder) error { b.progress = f; return nil } }

// WithRemoteOptions are used to pull base images given by reference.
func WithRemoteOptions(o ...remote.Option) Option {
	return func(b *Builder) error { b.remote = append(b.remote, o...); return nil }
}

// WithGoTool names the go command (default "go").
func WithGoTool(p string) Option { return func(b *Builder) error { b.goTool = p; return nil } }

// New makes a Builder over a set of specs (see spec.LoadDir).
func New(cache *Cache, specs map[string]*spec.Spec, opts ...Option) (*Builder, error) {
	if cache == nil {
		return nil, errors.New("a cache is required")
	}
	b := &Builder{cache: cache, specs: specs, goTool: "go", progress: func(Event) {}, built: map[string]*Result{},
		wheelDir: filepath.Join(cache.dir, "wheels")}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		b.epoch = time.Unix(n, 0).UTC()
	} else {
		b.epoch = time.Unix(0, 0).UTC()
	}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// LayerInfo describes one layer of a built image.
type LayerInfo struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	DiffID string `json:"diffID"`
	Size   int64  `json:"size"`
	Cached bool   `json:"cached"`
}

// Result is a built image: one platform (Image) or several (Index).
type Result struct {
	Name     string
	Digest   v1.Hash
	Image    v1.Image
	Index    v1.ImageIndex
	Layers   []LayerInfo // of the first platform, base layers included
	Built    int         // layers compressed in this build
	Duration time.Duration
}

// Build builds the named spec (and its base specs) and records it in the
// cache's layout under its name. Layers whose inputs are unchanged are
// taken from the cache without being read or compressed.
func (b *Builder) Build(ctx context.Context, specName string) (*Result, error) {
	defer b.runCleanup()
	r, err := b.build(ctx, specName)
	if err != nil {
		return nil, err
	}
	if err := b.cache.Save(); err != nil {
		return nil, fmt.Errorf("saving cache index: %w", err)
	}
	return r, nil
}

func (b *Builder) runCleanup() {
	b.mu.Lock()
	fs := b.cleanup
	b.cleanup = nil
	b.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func (b *Builder) build(ctx context.Context, specName string) (*Result, error) {
	b.mu.Lock()
	if r, ok := b.built[specName]; ok {
		b.mu.Unlock()
		return r, nil
	}
	b.mu.Unlock()
	s, ok := b.specs[specName]
	if !ok {
		return nil, fmt.Errorf("no spec named %q", specName)
	}
	start := time.Now()
	res := &Result{Name: specName}
	var manifests []mutate.IndexAddendum
	for i, platform := range s.Platforms {
		img, infos, built, err := b.buildPlatform(ctx, s, platform)
		if err != nil {
			return nil, err
		}
		res.Built += built
		if i == 0 {
			res.Image, res.Layers = img, infos
		}
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			return nil, err
		}
		manifests = append(manifests, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	annotations := map[string]string{RefNameAnnotation: specName}
	if len(manifests) > 1 {
		idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, manifests...), types.OCIImageIndex)
		if err := validate.Index(idx, validate.Fast); err != nil {
			return nil, fmt.Errorf("%s: built index is invalid: %w", s.File, err)
		}
		if err := b.cache.layout.ReplaceIndex(idx, match.Annotation(RefNameAnnotation, specName), layout.WithAnnotations(annotations)); err != nil {
			return nil, fmt.Errorf("writing %s to the layout: %w", specName, err)
		}
		d, err := idx.Digest()
		if err != nil {
			return nil, err
		}
		res.Index, res.Image, res.Digest = idx, nil, d
	} else {
		if err := b.cache.layout.ReplaceImage(res.Image, match.Annotation(RefNameAnnotation, specName), layout.WithAnnotations(annotations)); err != nil {
			return nil, fmt.Errorf("writing %s to the layout: %w", specName, err)
		}
		d, err := res.Image.Digest()
		if err != nil {
			return nil, err
		}
		res.Digest = d
	}
	res.Duration = time.Since(start)
	b.mu.Lock()
	b.built[specName] = res
	b.mu.Unlock()
	return res, nil
}

// namedLayer is a layer with the name the spec gave it.
type namedLayer struct {
	name  string
	layer v1.Layer
	hit   bool
}

func (b *Builder) buildPlatform(ctx context.Context, s *spec.Spec, platform string) (v1.Image, []LayerInfo, int, error) {
	base, baseInfos, err := b.base(ctx, s, platform)
	if err != nil {
		return nil, nil, 0, err
	}
	var layers []namedLayer
	for _, l := range s.Layers {
		if err := ctx.Err(); err != nil {
			return nil, nil, 0, err
		}
		ls, err := b.layer(ctx, s, l, platform)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s: layer %s: %w", s.File, l.Name, err)
		}
		layers = append(layers, ls...)
	}
	adds := make([]mutate.Addendum, len(layers))
	infos := append([]LayerInfo(nil), baseInfos...)
	built := 0
	for i, l := range layers {
		adds[i] = mutate.Addendum{
			Layer:       l.layer,
			History:     v1.History{Created: v1.Time{Time: b.epoch}, CreatedBy: "vp images build: " + l.name, Comment: s.Name},
			Annotations: map[string]string{LayerNameKey: l.name},
			MediaType:   types.OCILayer,
		}
		d, _ := l.layer.Digest()
		diff, _ := l.layer.DiffID()
		size, _ := l.layer.Size()
		infos = append(infos, LayerInfo{Name: l.name, Digest: d.String(), DiffID: diff.String(), Size: size, Cached: l.hit})
		if !l.hit {
			built++
		}
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, nil, 0, err
	}
	img, err = b.configure(img, s, platform)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", s.File, err)
	}
	if err := validate.Image(img, validate.Fast); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: built image is invalid: %w", s.File, err)
	}
	return img, infos, built, nil
}

func (b *Builder) configure(img v1.Image, s *spec.Spec, platform string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: b.epoch}
	env := map[string]string{}
	var order []string
	for _, kv := range cf.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = os.Expand(s.Env[k], func(v string) string { return env[v] })
	}
	cf.Config.Env = nil
	for _, k := range order {
		cf.Config.Env = append(cf.Config.Env, k+"="+env[k])
	}
	if s.Entrypoint != nil {
		cf.Config.Entrypoint = s.Entrypoint
	}
	if s.Cmd != nil {
		cf.Config.Cmd = s.Cmd
	}
	if s.WorkingDir != "" {
		cf.Config.WorkingDir = s.WorkingDir
	}
	if s.User != "" {
		cf.Config.User = s.User
	}
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels["org.opencontainers.image.title"] = s.Name
	if s.Description != "" {
		cf.Config.Labels["org.opencontainers.image.description"] = s.Description
	}
	if s.Framework != "" {
		cf.Config.Labels[FrameworkLabel] = s.Framework
	}
	if len(s.Families) > 0 {
		cf.Config.Labels[FamiliesLabel] = strings.Join(s.Families, ",")
	}
	for k, v := range s.Labels {
		cf.Config.Labels[k] = v
	}
	return mutate.ConfigFile(img, cf)
}

func (b *Builder) base(ctx context.Context, s *spec.Spec, platform string) (v1.Image, []LayerInfo, error) {
	scratch := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	scratch = mutate.ConfigMediaType(scratch, types.OCIConfigJSON)
	switch bs := s.Base; {
	case bs.Scratch:
		return scratch, nil, nil
	case bs.Spec != "":
		r, err := b.build(ctx, bs.Spec)
		if err != nil {
			return nil, nil, err
		}
		img := r.Image
		if r.Index != nil {
			if img, err = imageFor(r.Index, platform); err != nil {
				return nil, nil, fmt.Errorf("%s: base spec %s: %w", s.File, bs.Spec, err)
			}
		}
		return img, r.Layers, nil
	case bs.Rootfs != "":
		p := s.Resolve(bs.Rootfs)
		sum, err := b.cache.FileSHA256(p)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: base.rootfs: %w", s.File, err)
		}
		b.progress(Event{Spec: s.Name, Layer: "rootfs", Platform: platform, Phase: "building"})
		l, hit, err := b.cache.Layer(Key("rootfs", sum), func(w io.Writer) error {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(w, f)
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: base.rootfs: %w", s.File, err)
		}
		b.report(s, "rootfs", platform, l, hit)
		img, err := mutate.Append(scratch, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
			History: v1.History{Created: v1.Time{Time: b.epoch}, CreatedBy: "vp images build: rootfs " + filepath.Base(p)}})
		if err != nil {
			return nil, nil, err
		}
		d, _ := l.Digest()
		diff, _ := l.DiffID()
		size, _ := l.Size()
		return img, []LayerInfo{{Name: "rootfs", Digest: d.String(), DiffID: diff.String(), Size: size, Cached: hit}}, nil
	case bs.Layout != "":
		idx, err := layout.ImageIndexFromPath(s.Resolve(bs.Layout))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: base.layout: %w", s.File, err)
		}
		img, err := imageFromLayout(idx, bs.Tag, platform)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: base.layout: %w", s.File, err)
		}
		return img, nil, nil
	default:
		ref, err := name.ParseReference(bs.Image)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: base.image: %w", s.File, err)
		}
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			return nil, nil, err
		}
		img, err := remote.Image(ref, append([]remote.Option{remote.WithContext(ctx), remote.WithPlatform(*p)}, b.remote...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: pulling base %s: %w", s.File, bs.Image, err)
		}
		return img, nil, nil
	}
}

func (b *Builder) report(s *spec.Spec, layer, platform string, l v1.Layer, hit bool) {
	size, _ := l.Size()
	phase := "built"
	if hit {
		phase = "cached"
	}
	b.progress(Event{Spec: s.Name, Layer: layer, Platform: platform, Phase: phase, Size: size})
}

func imageFor(idx v1.ImageIndex, platform string) (v1.Image, error) {
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(*p) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no image for %s", platform)
}

func imageFromLayout(idx v1.ImageIndex, tag, platform string) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var cands []v1.Descriptor
	for _, d := range m.Manifests {
		if tag == "" || d.Annotations[RefNameAnnotation] == tag {
			cands = append(cands, d)
		}
	}
	if len(cands) != 1 {
		return nil, fmt.Errorf("want one image (tag %q), found %d", tag, len(cands))
	}
	d := cands[0]
	if d.MediaType.IsIndex() {
		inner, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		return imageFor(inner, platform)
	}
	return idx.Image(d.Digest)
}
