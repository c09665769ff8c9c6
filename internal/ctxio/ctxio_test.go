package ctxio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestStopsAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := Reader(ctx, strings.NewReader("abcdef"))
	var buf bytes.Buffer
	w := Writer(ctx, &buf)
	p := make([]byte, 3)
	if n, err := r.Read(p); n != 3 || err != nil {
		t.Fatalf("Read before cancel = %d, %v", n, err)
	}
	if n, err := w.Write(p); n != 3 || err != nil {
		t.Fatalf("Write before cancel = %d, %v", n, err)
	}
	cancel()
	if _, err := r.Read(p); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel = %v, want context.Canceled", err)
	}
	if _, err := io.Copy(w, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Write after cancel = %v, want context.Canceled", err)
	}
	if buf.String() != "abc" {
		t.Errorf("written = %q, want abc", buf.String())
	}
}
