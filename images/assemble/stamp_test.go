package assemble

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vision-platform/vp/images/imagespec"
)

func TestStamp(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, s string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("specs/base.yaml", "name: base\nbase: {scratch: true}\nlayers:\n  - name: f\n    file: {src: ../src/f.txt, dest: /f.txt}\n")
	write("specs/app.yaml", "name: app\nbase: {spec: base}\nlayers:\n  - name: d\n    dir: {src: ../src/tree, dest: /opt/tree}\n")
	write("specs/other.yaml", "name: other\nbase: {scratch: true}\nlayers:\n  - name: d\n    dir: {src: ../src/elsewhere, dest: /opt/x}\n")
	write("src/f.txt", "f")
	write("src/tree/a.txt", "a")
	write("src/elsewhere/b.txt", "b")
	stamp := func(name string) string {
		t.Helper()
		specs, err := imagespec.LoadDir(filepath.Join(dir, "specs"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := Stamp(specs, name)
		if err != nil {
			t.Fatalf("Stamp(%s) = %v", name, err)
		}
		return s
	}
	app, other := stamp("app"), stamp("other")
	if stamp("app") != app {
		t.Fatal("Stamp is not stable")
	}
	later := time.Now().Add(time.Hour)
	touch := func(rel string) {
		t.Helper()
		if err := os.Chtimes(filepath.Join(dir, rel), later, later); err != nil {
			t.Fatal(err)
		}
		later = later.Add(time.Hour)
	}
	steps := []struct {
		desc        string
		do          func()
		app, others bool // which stamps move
	}{
		{"a file of the app's dir source", func() { touch("src/tree/a.txt") }, true, false},
		{"a new file in it", func() { write("src/tree/new.txt", "n") }, true, false},
		{"the base's file source", func() { touch("src/f.txt") }, true, false},
		{"the app's spec", func() { touch("specs/app.yaml") }, true, false},
		{"another spec's source only", func() { touch("src/elsewhere/b.txt") }, false, true},
	}
	for _, s := range steps {
		s.do()
		a, o := stamp("app"), stamp("other")
		if (a != app) != s.app || (o != other) != s.others {
			t.Errorf("after changing %s: app stamp moved %v (want %v), other moved %v (want %v)", s.desc, a != app, s.app, o != other, s.others)
		}
		app, other = a, o
	}
	specs, err := imagespec.LoadDir(filepath.Join(dir, "specs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Stamp(specs, "nope"); err == nil {
		t.Error("Stamp(unknown spec) = nil error")
	}
}
