package assemble

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

	"github.com/vision-platform/vp/images/artifact"
	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/publish"
)

// Annotation and label keys the builder sets.
const (
	RefNameAnnotation = "org.opencontainers.image.ref.name"
	FrameworkLabel    = "dev.visionplatform.framework"
	FamiliesLabel     = "dev.visionplatform.families"
	LayerNameKey      = "dev.visionplatform.layer"
)

// Phase is the step an Event reports.
type Phase string

// Phases, in the order a build meets them.
const (
	PhaseDownloaded Phase = "downloaded" // a wheel downloaded from an index into the wheel store (Reference: its file name; Size: bytes)
	PhaseCached     Phase = "cached"     // a layer taken from the cache (Size: compressed bytes)
	PhaseBuilding   Phase = "building"   // a layer being made
	PhaseProgress   Phase = "progress"   // uncompressed bytes written so far (Size)
	PhaseBuilt      Phase = "built"      // a layer made (Size: compressed bytes)
	PhaseWritten    Phase = "written"    // the image written to its output (Reference: the output)
	PhasePushed     Phase = "pushed"     // the image pushed (Reference: repo@digest; Size: bytes uploaded)
)

// Event reports progress. Layer and Platform are empty for the events of
// a whole image.
type Event struct {
	Spec, Layer, Platform string
	Phase                 Phase
	Size                  int64
	Reference             string
}

// Builder builds specs into images in its cache's OCI layout and, when
// told to, writes them to an output and pushes them.
type Builder struct {
	cache    *Cache
	specs    map[string]*imagespec.Spec
	epoch    time.Time
	goTool   string
	progress func(Event)
	remote   []remote.Option
	store    string

	push   *pushTarget
	output *output
	tarTag string

	mu        sync.Mutex
	built     map[string]*Result
	cleanup   []func()
	tarImages int
}

type pushTarget struct {
	pub  *publish.Publisher
	repo string
	opts []name.Option
}

// Option configures a Builder.
type Option func(*Builder) error

// WithEpoch sets the time written into every mtime and the image config
// (default: SOURCE_DATE_EPOCH, else 0).
func WithEpoch(t time.Time) Option { return func(b *Builder) error { b.epoch = t.UTC(); return nil } }

// WithProgress reports each step through f, which must not block long. The
// builder itself prints nothing.
func WithProgress(f func(Event)) Option {
	return func(b *Builder) error {
		if f == nil {
			return errors.New("progress: nil func")
		}
		b.progress = f
		return nil
	}
}

// WithRemoteOptions are used to pull base images given by reference.
func WithRemoteOptions(o ...remote.Option) Option {
	return func(b *Builder) error { b.remote = append(b.remote, o...); return nil }
}

// WithGoTool names the go command (default "go").
func WithGoTool(p string) Option {
	return func(b *Builder) error {
		if p == "" {
			return errors.New("go tool: empty name")
		}
		b.goTool = p
		return nil
	}
}

// WithPush pushes every image Build makes to repo/NAME:latest with p
// ("127.0.0.1:5000/vp": the image timm goes to 127.0.0.1:5000/vp/timm).
// A repo that is not a repository is a *FieldError on FieldRepository.
func WithPush(p *publish.Publisher, repo string, opts ...name.Option) Option {
	return func(b *Builder) error {
		if p == nil {
			return errors.New("push: nil publisher")
		}
		repo = strings.TrimSuffix(repo, "/")
		if _, err := name.NewRepository(repo+"/probe", opts...); err != nil || repo == "" {
			if err == nil {
				err = errors.New("empty repository")
			}
			return &FieldError{Field: FieldRepository, Value: repo, Err: err}
		}
		b.push = &pushTarget{pub: p, repo: repo, opts: opts}
		return nil
	}
}

// WithOutput also writes every image Build makes to dest: "oci:DIR" adds
// it to an OCI image layout (created if need be), "tar:FILE" writes a
// tarball that docker load takes (one image only; a multi-platform image
// writes its first platform). Blobs are copied, never compressed again.
// Anything else is a *FieldError on FieldOutput.
func WithOutput(dest string) Option {
	return func(b *Builder) error {
		o, err := parseOutput(dest)
		if err != nil {
			return err
		}
		b.output = &o
		return nil
	}
}

// WithTarTag tags the image of a tar output (default vp/NAME:latest). A
// tag that is not an image tag is a *FieldError on FieldTag.
func WithTarTag(tag string) Option {
	return func(b *Builder) error {
		if _, err := name.NewTag(tag); err != nil {
			return &FieldError{Field: FieldTag, Value: tag, Err: err}
		}
		b.tarTag = tag
		return nil
	}
}

// New makes a Builder over a set of specs (see imagespec.LoadDir).
func New(cache *Cache, specs map[string]*imagespec.Spec, opts ...Option) (*Builder, error) {
	if cache == nil {
		return nil, errors.New("a cache is required")
	}
	b := &Builder{cache: cache, specs: specs, goTool: "go", progress: func(Event) {}, built: map[string]*Result{},
		store: filepath.Join(cache.dir, "wheels")}
	b.epoch = time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parsing SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		b.epoch = time.Unix(n, 0).UTC()
	}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, err
		}
	}
	if b.tarTag != "" && (b.output == nil || b.output.kind != "tar") {
		return nil, &FieldError{Field: FieldTag, Value: b.tarTag, Err: errors.New("only for a tar output")}
	}
	return b, nil
}

// LayerInfo describes one layer of a built image.
type LayerInfo struct {
	Name      string `json:"name"`
	Digest    string `json:"digest"`
	DiffID    string `json:"diffID"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType"`
	// Cached: taken from the cache, not made by this build.
	Cached bool `json:"cached"`
	// Push is what the push did with the layer (pushed, existed or
	// mounted); empty when the image was not pushed.
	Push publish.Action `json:"push,omitempty"`
}

// Result is a built image.
type Result struct {
	Name     string
	Artifact artifact.Artifact // an image, or an index for several platforms
	Digest   v1.Hash
	// Reference is repo@digest once pushed.
	Reference string
	// Output is where the image was written (oci:DIR, tar:FILE), if asked.
	Output string
	Layers []LayerInfo // of the first platform, base layers included
	Built  int         // layers made by this build; 0 is a cache hit
	// BytesPushed and BytesReused are the blob bytes the push uploaded and
	// the registry already had (mounted ones included).
	BytesPushed, BytesReused int64
	Duration                 time.Duration
}

// CacheHit reports whether every layer came from the cache.
func (r *Result) CacheHit() bool { return r.Built == 0 }

// Build builds the named spec (and its base specs), records it in the
// cache's layout under its name, then writes it to the output and pushes
// it when the builder was told to. Layers whose inputs are unchanged are
// taken from the cache without being read or compressed. vp images build
// and the image builder call this one function.
func (b *Builder) Build(ctx context.Context, specName string) (*Result, error) {
	defer b.runCleanup()
	start := time.Now()
	built, err := b.build(ctx, specName)
	if err != nil {
		return nil, err
	}
	if err := b.cache.Save(); err != nil {
		return nil, fmt.Errorf("saving cache index: %w", err)
	}
	r := *built
	r.Layers = append([]LayerInfo(nil), built.Layers...)
	if b.output != nil {
		if err := b.writeOutput(&r); err != nil {
			return nil, err
		}
		b.progress(Event{Spec: r.Name, Phase: PhaseWritten, Reference: r.Output})
	}
	if b.push != nil {
		if err := b.publish(ctx, &r); err != nil {
			return nil, err
		}
		b.progress(Event{Spec: r.Name, Phase: PhasePushed, Reference: r.Reference, Size: r.BytesPushed})
	}
	r.Duration = time.Since(start)
	return &r, nil
}

// publish pushes r to the builder's repository and records what each
// layer took.
func (b *Builder) publish(ctx context.Context, r *Result) error {
	ref, err := name.ParseReference(b.push.repo+"/"+r.Name+":latest", b.push.opts...)
	if err != nil {
		return &FieldError{Field: FieldRepository, Value: b.push.repo, Err: err}
	}
	pr, err := b.push.pub.Push(ctx, ref, r.Artifact)
	if err != nil {
		return fmt.Errorf("pushing %s: %w", r.Name, err)
	}
	r.Reference, r.BytesPushed, r.BytesReused = pr.Reference, pr.BytesPushed, pr.BytesReused
	actions := map[string]publish.Action{}
	for _, bl := range pr.Blobs {
		actions[bl.Digest] = bl.Action
	}
	for i := range r.Layers {
		r.Layers[i].Push = actions[r.Layers[i].Digest]
	}
	return nil
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

func (b *Builder) onCleanup(f func()) {
	b.mu.Lock()
	b.cleanup = append(b.cleanup, f)
	b.mu.Unlock()
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
		return nil, fmt.Errorf("%w %q", ErrNoSpec, specName)
	}
	start := time.Now()
	res := &Result{Name: specName}
	var manifests []mutate.IndexAddendum
	var first v1.Image
	for i, platform := range s.Platforms {
		img, infos, built, err := b.buildPlatform(ctx, s, platform)
		if err != nil {
			return nil, err
		}
		res.Built += built
		if i == 0 {
			first, res.Layers = img, infos
		}
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			return nil, fmt.Errorf("%s: platform %s: %w", s.File, platform, err)
		}
		manifests = append(manifests, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	res.Artifact = artifact.FromImage(first)
	if len(manifests) > 1 {
		idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, manifests...), types.OCIImageIndex)
		if err := validate.Index(idx, validate.Fast); err != nil {
			return nil, fmt.Errorf("%s: built index is invalid: %w", s.File, err)
		}
		res.Artifact = artifact.FromIndex(idx)
	}
	if err := b.record(specName, res.Artifact); err != nil {
		return nil, err
	}
	d, err := res.Artifact.Digest()
	if err != nil {
		return nil, fmt.Errorf("computing the digest of %s: %w", specName, err)
	}
	res.Digest = d
	res.Duration = time.Since(start)
	b.mu.Lock()
	b.built[specName] = res
	b.mu.Unlock()
	return res, nil
}

// record writes a into the cache's layout under specName, replacing what
// was there.
func (b *Builder) record(specName string, a artifact.Artifact) error {
	match := match.Annotation(RefNameAnnotation, specName)
	ann := layout.WithAnnotations(map[string]string{RefNameAnnotation: specName})
	var err error
	if idx := a.Index(); idx != nil {
		err = b.cache.layout.ReplaceIndex(idx, match, ann)
	} else {
		err = b.cache.layout.ReplaceImage(a.Image(), match, ann)
	}
	if err != nil {
		return fmt.Errorf("writing %s to the layout: %w", specName, err)
	}
	return nil
}

// namedLayer is a layer with the name the spec gave it.
type namedLayer struct {
	name  string
	layer v1.Layer
	hit   bool
}

func (b *Builder) buildPlatform(ctx context.Context, s *imagespec.Spec, platform string) (v1.Image, []LayerInfo, int, error) {
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
	if err := b.checkPaths(ctx, s, base, layers); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", s.File, err)
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
		info, err := layerInfo(l.name, l.layer, l.hit)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s: layer %s: %w", s.File, l.name, err)
		}
		infos = append(infos, info)
		if !l.hit {
			built++
		}
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%s: appending layers: %w", s.File, err)
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

func layerInfo(name string, l v1.Layer, hit bool) (LayerInfo, error) {
	d, err := l.Digest()
	if err != nil {
		return LayerInfo{}, fmt.Errorf("reading digest: %w", err)
	}
	diff, err := l.DiffID()
	if err != nil {
		return LayerInfo{}, fmt.Errorf("reading diff id: %w", err)
	}
	size, err := l.Size()
	if err != nil {
		return LayerInfo{}, fmt.Errorf("reading size: %w", err)
	}
	mt, err := l.MediaType()
	if err != nil {
		return LayerInfo{}, fmt.Errorf("reading media type: %w", err)
	}
	return LayerInfo{Name: name, Digest: d.String(), DiffID: diff.String(), Size: size, MediaType: string(mt), Cached: hit}, nil
}

func (b *Builder) configure(img v1.Image, s *imagespec.Spec, platform string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cf = cf.DeepCopy()
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, fmt.Errorf("platform %s: %w", platform, err)
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
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("writing config: %w", err)
	}
	return img, nil
}

func (b *Builder) base(ctx context.Context, s *imagespec.Spec, platform string) (v1.Image, []LayerInfo, error) {
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
		img := r.Artifact.Image()
		if idx := r.Artifact.Index(); idx != nil {
			if img, err = imageFor(idx, platform); err != nil {
				return nil, nil, fmt.Errorf("%s: base spec %s: %w", s.File, bs.Spec, err)
			}
		}
		return img, r.Layers, nil
	case bs.Rootfs != "":
		img, info, err := b.rootfsBase(ctx, s, scratch, platform)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: base.rootfs: %w", s.File, err)
		}
		return img, []LayerInfo{info}, nil
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
			return nil, nil, fmt.Errorf("%s: platform %s: %w", s.File, platform, err)
		}
		img, err := remote.Image(ref, append([]remote.Option{remote.WithContext(ctx), remote.WithPlatform(*p)}, b.remote...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: pulling base %s: %w", s.File, bs.Image, err)
		}
		return img, nil, nil
	}
}

// rootfsBase makes the layer of a root filesystem tarball, as it is.
func (b *Builder) rootfsBase(ctx context.Context, s *imagespec.Spec, scratch v1.Image, platform string) (v1.Image, LayerInfo, error) {
	p := s.Resolve(s.Base.Rootfs)
	sum, err := b.cache.FileSHA256(p)
	if err != nil {
		return nil, LayerInfo{}, err
	}
	b.progress(Event{Spec: s.Name, Layer: "rootfs", Platform: platform, Phase: PhaseBuilding})
	l, hit, err := b.cache.Layer(ctx, Key("rootfs", sum), func(w io.Writer) error { return copyChecked(w, p, sum) })
	if err != nil {
		return nil, LayerInfo{}, err
	}
	if err := b.report(s, "rootfs", platform, l, hit); err != nil {
		return nil, LayerInfo{}, err
	}
	img, err := mutate.Append(scratch, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
		Annotations: map[string]string{LayerNameKey: "rootfs"},
		History:     v1.History{Created: v1.Time{Time: b.epoch}, CreatedBy: "vp images build: rootfs " + filepath.Base(p)}})
	if err != nil {
		return nil, LayerInfo{}, fmt.Errorf("appending the rootfs layer: %w", err)
	}
	info, err := layerInfo("rootfs", l, hit)
	if err != nil {
		return nil, LayerInfo{}, err
	}
	return img, info, nil
}

func (b *Builder) report(s *imagespec.Spec, layer, platform string, l v1.Layer, hit bool) error {
	size, err := l.Size()
	if err != nil {
		return fmt.Errorf("reading the size of layer %s: %w", layer, err)
	}
	phase := PhaseBuilt
	if hit {
		phase = PhaseCached
	}
	b.progress(Event{Spec: s.Name, Layer: layer, Platform: platform, Phase: phase, Size: size})
	return nil
}

func imageFor(idx v1.ImageIndex, platform string) (v1.Image, error) {
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, fmt.Errorf("platform %s: %w", platform, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading index manifest: %w", err)
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
		return nil, fmt.Errorf("reading layout index: %w", err)
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
			return nil, fmt.Errorf("reading index %s: %w", d.Digest, err)
		}
		return imageFor(inner, platform)
	}
	return idx.Image(d.Digest)
}
