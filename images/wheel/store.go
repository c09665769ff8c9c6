package wheel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vision-platform/vp/internal/ctxio"
)

// Store is a directory of wheels, each hashed as it was written there and
// kept under its sha256 (Dir/ab/ab12…/name.whl), and only when its lock
// pins that hash. The installer reads wheels from the store alone: what
// goes into a layer is the bytes that were hashed, whatever happens to the
// wheelhouse or the index afterwards.
type Store struct {
	Dir string
}

func (s *Store) path(sum, filename string) string {
	return filepath.Join(s.Dir, sum[:2], sum, filename)
}

// Lookup returns the stored wheel filename whose hex sha256 is sum, if the
// store has it.
func (s *Store) Lookup(sum, filename string) (string, bool) {
	if len(sum) != 64 || !validFilename(filename) {
		return "", false
	}
	p := s.path(sum, filename)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return p, true
}

// Add copies src into the store as filename, hashing it as it is written,
// and keeps it when pinned allows its sha256. Otherwise nothing is kept and
// the error is a *NotPinnedError. sum is returned whenever the whole of
// src was read. Cancelling ctx stops the copy.
func (s *Store) Add(ctx context.Context, src io.Reader, filename string, pinned func(sum string) bool) (path, sum string, err error) {
	if !validFilename(filename) {
		return "", "", fmt.Errorf("storing wheel: %q is not a file name", filename)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return "", "", fmt.Errorf("creating wheel store: %w", err)
	}
	tmp, err := os.CreateTemp(s.Dir, ".add-*")
	if err != nil {
		return "", "", fmt.Errorf("storing wheel: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	// Large reads: each is a system call.
	if _, err := io.CopyBuffer(io.MultiWriter(tmp, h), ctxio.Reader(ctx, src), make([]byte, 1<<20)); err != nil {
		return "", "", fmt.Errorf("storing %s: %w", filename, err)
	}
	if err := tmp.Close(); err != nil {
		return "", "", fmt.Errorf("storing %s: %w", filename, err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if !pinned(sum) {
		return "", sum, &NotPinnedError{File: filename, Sum: sum}
	}
	path = s.path(sum, filename)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", "", fmt.Errorf("storing %s: %w", filename, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", "", fmt.Errorf("storing %s: %w", filename, err)
	}
	return path, sum, nil
}

func validFilename(n string) bool {
	return n != "" && n != "." && n != ".." && filepath.Base(n) == n
}
