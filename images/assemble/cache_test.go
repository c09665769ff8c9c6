package assemble

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Cancelling the context of Cache.Layer stops a long compression at the
// next write, and nothing of the layer is kept: no blob, no record.
func TestCacheLayerCancel(t *testing.T) {
	dir := t.TempDir()
	c := must[*Cache](t)(OpenCache(dir))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const chunk, cancelAt, total = 1 << 20, 16 << 20, 1 << 30
	var written int64
	var produceErr error
	_, _, err := c.Layer(ctx, "big", func(w io.Writer) error {
		buf := make([]byte, chunk)
		for written < total {
			if written == cancelAt {
				cancel()
			}
			n, err := w.Write(buf)
			written += int64(n)
			if err != nil {
				produceErr = err
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(produceErr, context.Canceled) {
		t.Fatalf("Layer(cancelled) = %v (the write failed with %v), want context.Canceled", err, produceErr)
	}
	if written != cancelAt {
		t.Errorf("produce wrote %d bytes, want %d: the write after the cancel must fail", written, cancelAt)
	}
	blobs, err := os.ReadDir(filepath.Join(dir, "oci", "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 0 {
		t.Errorf("blobs after a cancelled layer: %v, want none", blobs)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	again := must[*Cache](t)(OpenCache(dir))
	made := false
	_, hit, err := again.Layer(context.Background(), "big", func(w io.Writer) error {
		made = true
		_, err := w.Write([]byte("small"))
		return err
	})
	if err != nil || hit || !made {
		t.Errorf("Layer after the cancelled one = hit %v, made %v, %v; want it made anew", hit, made, err)
	}
}
