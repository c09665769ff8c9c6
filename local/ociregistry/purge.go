package ociregistry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// uploadsDir is the directory of a repository that holds its uploads in
// progress, one directory each (distribution's filesystem layout).
const uploadsDir = "_uploads"

// purgeLoop removes abandoned uploads now and then every purge interval,
// until ctx ends.
func (r *Registry) purgeLoop(ctx context.Context) {
	t := time.NewTicker(r.o.purgeInterval)
	defer t.Stop()
	for {
		n, err := purgeUploads(r.repositoriesRoot(), time.Now().Add(-r.o.purgeAge))
		l := r.log.WithField("removed", n)
		if err != nil {
			l.WithError(err).Warn("purging abandoned uploads")
		} else if n > 0 {
			l.Info("purged abandoned uploads")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// repositoriesRoot is where the filesystem driver keeps repositories.
func (r *Registry) repositoriesRoot() string {
	return filepath.Join(r.storageRoot(), "docker", "registry", "v2", "repositories")
}

// purgeUploads removes every upload directory under root whose last
// activity came before cutoff, and returns how many it removed. The last
// activity is the later of the upload's startedat time and the newest
// modification of a file in it, so an upload that keeps receiving bytes is
// never removed, however long it has been running.
func purgeUploads(root string, cutoff time.Time) (int, error) {
	removed := 0
	var errs []error
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // nothing pushed yet, or removed under us
			}
			errs = append(errs, err)
			return nil
		}
		if !d.IsDir() || !strings.HasPrefix(d.Name(), "_") {
			return nil
		}
		// Repository name components never start with "_": this is one of
		// distribution's own directories, and only _uploads matters here.
		if d.Name() == uploadsDir {
			n, err := purgeDir(p, cutoff)
			removed += n
			if err != nil {
				errs = append(errs, err)
			}
		}
		return filepath.SkipDir
	})
	if err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// purgeDir removes the uploads in one repository's _uploads directory whose
// last activity came before cutoff.
func purgeDir(dir string, cutoff time.Time) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("listing uploads: %w", err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		up := filepath.Join(dir, e.Name())
		last, err := lastActivity(up)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !last.Before(cutoff) {
			continue
		}
		if err := os.RemoveAll(up); err != nil {
			errs = append(errs, fmt.Errorf("removing abandoned upload: %w", err))
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

// lastActivity is the later of an upload's startedat time and the newest
// modification time of anything in its directory.
func lastActivity(dir string) (time.Time, error) {
	var last time.Time
	if b, err := os.ReadFile(filepath.Join(dir, "startedat")); err == nil {
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b))); err == nil {
			last = t
		}
	}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if fi.ModTime().After(last) {
			last = fi.ModTime()
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("reading upload %s: %w", filepath.Base(dir), err)
	}
	return last, nil
}
