package assemble

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/wheel"
)

// LockOptions say where Lock's resolver looks for wheels, and for which
// Python and glibc it resolves.
type LockOptions struct {
	// Resolve carries pip's Python, the index or wheel directories and the
	// image's Python version (default "3.11", Debian bookworm's). Its
	// Platforms are set from each spec's platforms.
	Resolve wheel.ResolveOptions
	// Glibc is the image's glibc version, for manylinux tags (default
	// "2.36", Debian bookworm's).
	Glibc string
	// Progress, when set, hears of each resolution as it starts.
	Progress func(LockEvent)
}

// LockEvent says that a requirements file is being resolved.
type LockEvent struct {
	Spec          string
	Requirements  string // as the spec gives it
	PythonVersion string
	Platforms     []string // wheel platform tags
}

// Locked is a lock file Lock wrote.
type Locked struct {
	Spec         string
	Layer        string
	Requirements string // the file resolved, on this machine
	Lock         string // the file written, on this machine
	Wheels       int
}

// Lock resolves the requirements file of every wheels layer of the named
// specs (all of them when names is empty) with pip's resolver, for each
// spec's platforms, and writes its lock file: name==version with the
// sha256 of every wheel chosen. vp images lock calls it.
func Lock(ctx context.Context, specs map[string]*imagespec.Spec, names []string, o LockOptions) ([]Locked, error) {
	if o.Glibc == "" {
		o.Glibc = "2.36"
	}
	if o.Resolve.PythonVersion == "" {
		o.Resolve.PythonVersion = "3.11"
	}
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(specs))
	}
	var out []Locked
	for _, n := range names {
		s, ok := specs[n]
		if !ok {
			return out, fmt.Errorf("%w %q", ErrNoSpec, n)
		}
		for _, l := range s.Layers {
			if l.Wheels == nil || l.Wheels.Requirements == "" {
				continue
			}
			lk, err := lockLayer(ctx, s, l, o)
			if err != nil {
				return out, err
			}
			out = append(out, lk)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNothingToLock, strings.Join(names, ", "))
	}
	return out, nil
}

// lockLayer resolves and writes the lock of one wheels layer.
func lockLayer(ctx context.Context, s *imagespec.Spec, l imagespec.Layer, o LockOptions) (Locked, error) {
	opts := o.Resolve
	opts.Platforms = nil
	for _, p := range s.Platforms {
		tag, err := wheel.PlatformTag(p, o.Glibc)
		if err != nil {
			return Locked{}, fmt.Errorf("%s: %w", s.File, err)
		}
		opts.Platforms = append(opts.Platforms, tag)
	}
	in, lock := s.Resolve(l.Wheels.Requirements), s.Resolve(l.Wheels.Lock)
	if o.Progress != nil {
		o.Progress(LockEvent{Spec: s.Name, Requirements: l.Wheels.Requirements, PythonVersion: opts.PythonVersion, Platforms: opts.Platforms})
	}
	reqs, err := wheel.Resolve(ctx, in, opts)
	if err != nil {
		return Locked{}, fmt.Errorf("%s: resolving %s: %w", s.Name, l.Wheels.Requirements, err)
	}
	rel, err := filepath.Rel(filepath.Dir(lock), in)
	if err != nil {
		rel = in
	}
	header := fmt.Sprintf("Written by vp images lock from %s\n(python %s; %s).\nEdit the requirements and run vp images lock %s again; do not edit by hand.",
		filepath.ToSlash(rel), opts.PythonVersion, strings.Join(opts.Platforms, ", "), s.Name)
	var b bytes.Buffer
	if err := wheel.WriteLock(&b, header, reqs); err != nil {
		return Locked{}, fmt.Errorf("%s: writing lock: %w", s.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		return Locked{}, fmt.Errorf("%s: writing lock: %w", s.Name, err)
	}
	if err := writeAtomic(lock, b.Bytes()); err != nil {
		return Locked{}, fmt.Errorf("%s: %w", s.Name, err)
	}
	return Locked{Spec: s.Name, Layer: l.Name, Requirements: in, Lock: lock, Wheels: len(reqs)}, nil
}
