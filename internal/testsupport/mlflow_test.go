package testsupport

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB whose Skipf and Fatalf end the calling
// goroutine and keep the message.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func run(t *testing.T, f func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

// TestMLflowBinary: without the server, the test fails saying to run make
// deps, unless make deps found no PyPI here: then it skips, saying so.
func TestMLflowBinary(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("PATH", t.TempDir())
	bin := filepath.Join(home, ".cache", "vision-platform", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	r := run(t, func(tb testing.TB) { MLflowBinary(tb) })
	if r.skipped != "" || !strings.Contains(r.failed, "run make deps") {
		t.Errorf("MLflowBinary() with nothing installed: skipped %q, failed %q; want a failure saying run make deps", r.skipped, r.failed)
	}
	if err := os.WriteFile(filepath.Join(bin, "mlflow.unavailable"), []byte("MLflow 3.17.2 cannot be installed here: pip cannot reach its package index (PyPI).\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, func(tb testing.TB) { MLflowBinary(tb) })
	if r.failed != "" || !strings.Contains(r.skipped, "PyPI") || !strings.Contains(r.skipped, "polyglot") {
		t.Errorf("MLflowBinary() where make deps found no PyPI: skipped %q, failed %q; want a skip naming PyPI and the polyglot kind", r.skipped, r.failed)
	}
	if err := os.WriteFile(filepath.Join(bin, "mlflow"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var got string
	r = run(t, func(tb testing.TB) { got = MLflowBinary(tb) })
	if r.failed != "" || r.skipped != "" || got != filepath.Join(bin, "mlflow") {
		t.Errorf("MLflowBinary() installed = %q (skipped %q, failed %q), want %s", got, r.skipped, r.failed, filepath.Join(bin, "mlflow"))
	}
}
