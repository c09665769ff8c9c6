package assemble

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/wheel"
)

// DefaultOwnLayerOver is the wheel size above which a wheel gets a layer of
// its own.
const DefaultOwnLayerOver = 32 << 20

// pinnedWheel is a wheel of a lock, in the builder's store: its bytes were
// hashed as they were written there, and the lock pins that hash.
type pinnedWheel struct {
	req  wheel.Requirement
	path string
	sum  string
	size int64
}

// wheelLayers installs the wheels of a lock file: each wheel over the
// threshold in a layer of its own (keyed by the wheel's hash and the
// install paths alone, so it is the same layer in every image), the rest
// together in one. Every wheel is checked against the lock before anything
// of it is unpacked.
func (b *Builder) wheelLayers(ctx context.Context, s *imagespec.Spec, l imagespec.Layer, platform string) ([]namedLayer, error) {
	w := l.Wheels
	reqs, err := readLock(s, w)
	if err != nil {
		return nil, err
	}
	if err := checkForbidden(s, w, reqs); err != nil {
		return nil, err
	}
	threshold, err := ownLayerThreshold(w)
	if err != nil {
		return nil, err
	}
	pinned, err := b.fetchWheels(ctx, s, l.Name, w, reqs)
	if err != nil {
		return nil, err
	}
	big, small := splitBySize(pinned, threshold)
	opts := installOptions(w)
	key := installKey(opts)
	var out []namedLayer
	for _, p := range big {
		nl, err := b.wheelLayer(ctx, s, l.Name+"/"+wheel.Normalize(p.req.Name), platform, opts, []pinnedWheel{p}, Key(append(key, p.sum)...))
		if err != nil {
			return nil, err
		}
		out = append(out, nl)
	}
	if len(small) > 0 {
		sums := make([]string, len(small))
		for i, p := range small {
			sums[i] = p.sum
		}
		sort.Strings(sums)
		nl, err := b.wheelLayer(ctx, s, l.Name, platform, opts, small, Key(append(key, strings.Join(sums, ","))...))
		if err != nil {
			return nil, err
		}
		out = append(out, nl)
	}
	return out, nil
}

// readLock parses the layer's lock file; a missing one says how to make it.
func readLock(s *imagespec.Spec, w *imagespec.WheelSource) ([]wheel.Requirement, error) {
	reqs, err := wheel.ParseLock(s.Resolve(w.Lock))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lock file %s is missing: generate it with vp images lock %s where a Python index or a wheelhouse is at hand (images/frameworks/README.md): %w",
			w.Lock, s.Name, ErrLockMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("reading lock file: %w", err)
	}
	return reqs, nil
}

// checkForbidden refuses a lock that pins a distribution the spec forbids.
func checkForbidden(s *imagespec.Spec, w *imagespec.WheelSource, reqs []wheel.Requirement) error {
	forbidden := map[string]bool{}
	for _, f := range s.Forbid {
		forbidden[wheel.Normalize(f)] = true
	}
	for _, r := range reqs {
		if forbidden[wheel.Normalize(r.Name)] {
			return fmt.Errorf("%s:%d: %s is forbidden in %s: %w", s.Resolve(w.Lock), r.Line, r.Name, s.Name, ErrForbidden)
		}
	}
	return nil
}

func ownLayerThreshold(w *imagespec.WheelSource) (int64, error) {
	if w.OwnLayerOver == "" {
		return DefaultOwnLayerOver, nil
	}
	n, err := imagespec.ParseSize(w.OwnLayerOver)
	if err != nil {
		return 0, fmt.Errorf("ownLayerOver: %w", err)
	}
	return n, nil
}

// fetchWheels finds every wheel of the lock in the wheelhouse or the index
// and brings it into the builder's store, its hash checked against the
// lock on the way.
func (b *Builder) fetchWheels(ctx context.Context, s *imagespec.Spec, layer string, w *imagespec.WheelSource, reqs []wheel.Requirement) ([]pinnedWheel, error) {
	store := &wheel.Store{Dir: b.store}
	var fetchers []wheel.Fetcher
	if w.Wheelhouse != "" {
		fetchers = append(fetchers, &wheel.Wheelhouse{Dir: s.Resolve(w.Wheelhouse), Store: store, Sums: b.cache})
	}
	if w.Index != "" {
		fetchers = append(fetchers, &wheel.Index{URL: w.Index, Store: store, Downloaded: func(filename string, size int64) {
			b.progress(Event{Spec: s.Name, Layer: layer, Phase: PhaseDownloaded, Reference: filename, Size: size})
		}})
	}
	out := make([]pinnedWheel, 0, len(reqs))
	for _, r := range reqs {
		p, sum, err := fetchOne(ctx, fetchers, r)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", s.Resolve(w.Lock), r.Line, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", s.Resolve(w.Lock), r.Line, err)
		}
		out = append(out, pinnedWheel{req: r, path: p, sum: sum, size: fi.Size()})
	}
	return out, nil
}

// fetchOne asks each fetcher in turn.
func fetchOne(ctx context.Context, fetchers []wheel.Fetcher, r wheel.Requirement) (string, string, error) {
	var errs []error
	for _, f := range fetchers {
		p, sum, err := f.Fetch(ctx, r)
		if err == nil {
			return p, sum, nil
		}
		if ctx.Err() != nil {
			return "", "", err
		}
		errs = append(errs, err)
	}
	return "", "", errors.Join(errs...)
}

// splitBySize puts the wheels over threshold, by name, apart from the
// rest.
func splitBySize(ws []pinnedWheel, threshold int64) (big, small []pinnedWheel) {
	for _, w := range ws {
		if w.size > threshold {
			big = append(big, w)
		} else {
			small = append(small, w)
		}
	}
	sort.Slice(big, func(i, j int) bool { return wheel.Normalize(big[i].req.Name) < wheel.Normalize(big[j].req.Name) })
	return big, small
}

func installOptions(w *imagespec.WheelSource) wheel.Options {
	return wheel.Options{SitePackages: w.SitePackages, Scripts: w.Scripts, Prefix: w.Prefix, Interpreter: w.Interpreter, VerifyRecord: w.VerifyRecord}
}

// installKey is the part of a wheel layer's key that says how its wheels
// are installed.
func installKey(o wheel.Options) []string {
	key := []string{"wheels", wheel.InstallerName, o.SitePackages, o.Scripts, o.Prefix, o.Interpreter}
	if o.VerifyRecord {
		// The same bytes, but a layer made without the check must not
		// stand in for one that asked for it.
		key = append(key, "verify-record")
	}
	return key
}

// wheelLayer installs ws into one layer.
func (b *Builder) wheelLayer(ctx context.Context, s *imagespec.Spec, name, platform string, o wheel.Options, ws []pinnedWheel, key string) (namedLayer, error) {
	return b.tarLayer(ctx, s, name, platform, key, func() ([]Entry, error) { return b.installEntries(ws, o) })
}

// installEntries lays the wheels out as layer entries. The wheels stay open
// until the build ends.
func (b *Builder) installEntries(ws []pinnedWheel, o wheel.Options) ([]Entry, error) {
	var out []Entry
	for _, w := range ws {
		inst, err := wheel.Install(w.path, o)
		if err != nil {
			return nil, err
		}
		b.onCleanup(func() { inst.Close() })
		for _, f := range inst.Files {
			out = append(out, Entry{Path: f.Path, Type: tar.TypeReg, Mode: f.Mode, Size: f.Size, Data: f.Data, Open: f.Open,
				From: fmt.Sprintf("%s==%s", w.req.Name, w.req.Version)})
		}
	}
	return out, nil
}
