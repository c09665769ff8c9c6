package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vision-platform/vp/images/spec"
	"github.com/vision-platform/vp/images/wheel"
)

// DefaultOwnLayerOver is the wheel size above which a wheel gets a layer of
// its own.
const DefaultOwnLayerOver = 32 << 20

func (b *Builder) layer(ctx context.Context, s *spec.Spec, l spec.Layer, platform string) ([]namedLayer, error) {
	if l.Wheels != nil {
		return b.wheelLayers(ctx, s, l, platform)
	}
	var entries []Entry
	var key string
	var err error
	switch {
	case l.Dir != nil:
		entries, key, err = b.dirEntries(s, l.Dir)
	case l.File != nil:
		entries, key, err = b.fileEntries(s, l.File)
	case l.Go != nil:
		entries, key, err = b.goEntries(ctx, s, l.Go, platform)
	default:
		return nil, errors.New("no source")
	}
	if err != nil {
		return nil, err
	}
	nl, err := b.tarLayer(s, l.Name, platform, key, func() ([]Entry, error) { return entries, nil })
	if err != nil {
		return nil, err
	}
	return []namedLayer{nl}, nil
}

// tarLayer returns the cached layer for key, or writes entries as a
// reproducible tar into the cache.
func (b *Builder) tarLayer(s *spec.Spec, name, platform, key string, entries func() ([]Entry, error)) (namedLayer, error) {
	key = Key(key, b.epoch.String())
	l, hit, err := b.cache.Layer(key, func(w io.Writer) error {
		b.progress(Event{Spec: s.Name, Layer: name, Platform: platform, Phase: "building"})
		es, err := entries()
		if err != nil {
			return err
		}
		pw := &progressWriter{w: w, report: func(n int64) {
			b.progress(Event{Spec: s.Name, Layer: name, Platform: platform, Phase: "progress", Size: n})
		}}
		return writeTar(pw, es, b.epoch)
	})
	if err != nil {
		return namedLayer{}, err
	}
	b.report(s, name, platform, l, hit)
	return namedLayer{name: name, layer: l, hit: hit}, nil
}

// wheelLayers installs the wheels of a lock file: each wheel over the
// threshold in a layer of its own (keyed by the wheel's hash and the
// install paths alone, so it is the same layer in every image), the rest
// together in one.
type hashResult struct {
	sum string
	err error
}

func (b *Builder) wheelLayers(ctx context.Context, s *spec.Spec, l spec.Layer, platform string) ([]namedLayer, error) {
	w := l.Wheels
	reqs, err := wheel.ParseLock(s.Resolve(w.Lock))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lock file %s is missing: generate it with vp images lock %s where a Python index or a wheelhouse is at hand (images/frameworks/README.md)", w.Lock, s.Name)
	}
	if err != nil {
		return nil, err
	}
	forbidden := map[string]bool{}
	for _, f := range s.Forbid {
		forbidden[wheel.Normalize(f)] = true
	}
	for _, r := range reqs {
		if forbidden[wheel.Normalize(r.Name)] {
			return nil, fmt.Errorf("%s:%d: %s is forbidden in %s", s.Resolve(w.Lock), r.Line, r.Name, s.Name)
		}
	}
	threshold := int64(DefaultOwnLayerOver)
	if w.OwnLayerOver != "" {
		threshold, _ = spec.ParseSize(w.OwnLayerOver)
	}
	var fetchers []wheel.Fetcher
	if w.Wheelhouse != "" {
		fetchers = append(fetchers, &wheel.Wheelhouse{Dir: s.Resolve(w.Wheelhouse), Hash: b.cache.FileSHA256})
	}
	if w.Index != "" {
		fetchers = append(fetchers, &wheel.Index{URL: w.Index, Dir: b.wheelDir})
	}
	opts := wheel.Options{SitePackages: w.SitePackages, Scripts: w.Scripts, Prefix: w.Prefix, Interpreter: w.Interpreter, VerifyRecord: w.VerifyRecord}
	type found struct {
		req  wheel.Requirement
		path string
		sum  string
		size int64
		// hashed delivers the sum of a wheel seen for the first time, hashed
		// beside the build instead of before it.
		hashed <-chan hashResult
	}
	var big, small []found
	for _, r := range reqs {
		var p, sum string
		var hashed chan hashResult
		if w.Wheelhouse != "" {
			house := &wheel.Wheelhouse{Dir: s.Resolve(w.Wheelhouse), Hash: b.cache.FileSHA256}
			if cands, err := house.Candidates(r); err == nil && len(cands) == 1 && !b.cache.HashKnown(cands[0]) {
				p = cands[0]
				hashed = make(chan hashResult, 1)
				go func(path string, ch chan<- hashResult) {
					sum, err := b.cache.FileSHA256(path)
					ch <- hashResult{sum, err}
				}(p, hashed)
			}
		}
		if p == "" {
			var errs []error
			for _, f := range fetchers {
				if p, sum, err = f.Fetch(ctx, r); err == nil {
					break
				}
				errs = append(errs, err)
			}
			if p == "" {
				return nil, fmt.Errorf("%s:%d: %w", s.Resolve(w.Lock), r.Line, errors.Join(errs...))
			}
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		f := found{req: r, path: p, sum: sum, size: fi.Size(), hashed: hashed}
		if fi.Size() > threshold {
			big = append(big, f)
		} else {
			small = append(small, f)
		}
	}
	// sums waits for the hashes still being computed and checks them
	// against the lock.
	sums := func(fs []found) ([]string, error) {
		out := make([]string, len(fs))
		for i := range fs {
			if fs[i].hashed != nil {
				h := <-fs[i].hashed
				if h.err != nil {
					return nil, h.err
				}
				if !fs[i].req.Allows(h.sum) {
					return nil, fmt.Errorf("%s:%d: %s has sha256 %s, which the lock does not pin for %s==%s",
						s.Resolve(w.Lock), fs[i].req.Line, filepath.Base(fs[i].path), h.sum, fs[i].req.Name, fs[i].req.Version)
				}
				fs[i].sum, fs[i].hashed = h.sum, nil
			}
			out[i] = fs[i].sum
		}
		return out, nil
	}
	installKey := []string{"wheels", wheel.InstallerName, opts.SitePackages, opts.Scripts, opts.Prefix, opts.Interpreter}
	if opts.VerifyRecord {
		// The same bytes, but a layer made without the check must not
		// stand in for one that asked for it.
		installKey = append(installKey, "verify-record")
	}
	install := func(fs []found) func() ([]Entry, error) {
		return func() ([]Entry, error) {
			var out []Entry
			for _, f := range fs {
				inst, err := wheel.Install(f.path, opts)
				if err != nil {
					return nil, err
				}
				b.mu.Lock()
				b.cleanup = append(b.cleanup, func() { inst.Close() })
				b.mu.Unlock()
				for _, wf := range inst.Files {
					e := Entry{Path: wf.Path, Type: tar.TypeReg, Mode: wf.Mode, Size: wf.Size, Data: wf.Data, Open: wf.Open, From: f.path}
					out = append(out, e)
				}
			}
			return out, nil
		}
	}
	var out []namedLayer
	layer := func(name string, fs []found, key func([]string) string) error {
		pending := false
		for _, f := range fs {
			pending = pending || f.hashed != nil
		}
		if !pending {
			ss, _ := sums(fs)
			nl, err := b.tarLayer(s, name, platform, key(ss), install(fs))
			out = append(out, nl)
			return err
		}
		b.progress(Event{Spec: s.Name, Layer: name, Platform: platform, Phase: "building"})
		l, err := b.cache.LayerKeyedAfter(func(wr io.Writer) error {
			es, err := install(fs)()
			if err != nil {
				return err
			}
			return writeTar(&progressWriter{w: wr, report: func(n int64) {
				b.progress(Event{Spec: s.Name, Layer: name, Platform: platform, Phase: "progress", Size: n})
			}}, es, b.epoch)
		}, func() (string, error) {
			ss, err := sums(fs)
			if err != nil {
				return "", err
			}
			return Key(key(ss), b.epoch.String()), nil
		})
		if err != nil {
			return err
		}
		b.report(s, name, platform, l, false)
		out = append(out, namedLayer{name: name, layer: l})
		return nil
	}
	sort.Slice(big, func(i, j int) bool { return wheel.Normalize(big[i].req.Name) < wheel.Normalize(big[j].req.Name) })
	for _, f := range big {
		err := layer(l.Name+"/"+wheel.Normalize(f.req.Name), []found{f}, func(ss []string) string { return Key(append(installKey, ss[0])...) })
		if err != nil {
			return nil, err
		}
	}
	if len(small) > 0 {
		err := layer(l.Name, small, func(ss []string) string {
			ss = append([]string(nil), ss...)
			sort.Strings(ss)
			return Key(append(installKey, strings.Join(ss, ","))...)
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// progressWriter reports the bytes written through it, at most twice a
// second.
type progressWriter struct {
	w      io.Writer
	n      int64
	last   time.Time
	report func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) > 500*time.Millisecond {
		p.last = now
		p.report(p.n)
	}
	return n, err
}
