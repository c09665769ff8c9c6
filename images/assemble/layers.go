package assemble

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vision-platform/vp/images/imagespec"
)

func (b *Builder) layer(ctx context.Context, s *imagespec.Spec, l imagespec.Layer, platform string) ([]namedLayer, error) {
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
	nl, err := b.tarLayer(ctx, s, l.Name, platform, key, func() ([]Entry, error) { return entries, nil })
	if err != nil {
		return nil, err
	}
	return []namedLayer{nl}, nil
}

// tarLayer returns the cached layer for key, or writes entries as a
// reproducible tar into the cache, and keeps the list of its paths beside
// it for the check of paths written twice.
func (b *Builder) tarLayer(ctx context.Context, s *imagespec.Spec, name, platform, key string, entries func() ([]Entry, error)) (namedLayer, error) {
	key = Key(key, b.epoch.String())
	var paths []pathEntry
	l, hit, err := b.cache.Layer(ctx, key, func(w io.Writer) error {
		b.progress(Event{Spec: s.Name, Layer: name, Platform: platform, Phase: PhaseBuilding})
		es, err := entries()
		if err != nil {
			return err
		}
		pw := &progressWriter{w: w, report: func(n int64) {
			b.progress(Event{Spec: s.Name, Layer: name, Platform: platform, Phase: PhaseProgress, Size: n})
		}}
		paths, err = writeTar(pw, es, b.epoch)
		return err
	})
	if err != nil {
		return namedLayer{}, err
	}
	if !hit {
		d, err := l.Digest()
		if err != nil {
			return namedLayer{}, fmt.Errorf("reading digest: %w", err)
		}
		if err := b.cache.savePaths(d, paths); err != nil {
			return namedLayer{}, err
		}
	}
	if err := b.report(s, name, platform, l, hit); err != nil {
		return namedLayer{}, err
	}
	return namedLayer{name: name, layer: l, hit: hit}, nil
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
