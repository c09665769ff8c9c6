package imagespec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vision-platform/vp/internal/testsupport"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "src/a.py", "x")
	write(t, dir, "timm.lock", "")
	if err := os.MkdirAll(filepath.Join(dir, "wheels"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := write(t, dir, "timm.yaml", `name: timm
base: {spec: base}
framework: timm
families: [resnet, vit]
env: {PYTHONPATH: /opt/vp/site-packages}
entrypoint: [/opt/vp/bin/vp-agent]
overrides: [/etc/motd, /usr/lib/python3]
layers:
  - name: adapter
    dir: {src: src, dest: /opt/vp/site-packages/vp_timm, exclude: ["**/__pycache__/**"]}
  - name: agent
    go: {package: ./cmd/agent, dest: /opt/vp/bin/vp-agent}
  - name: wheels
    wheels: {lock: timm.lock, wheelhouse: wheels, sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin, ownLayerOver: 16Mi}
`)
	s, err := Load(p)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if s.Name != "timm" || len(s.Layers) != 3 || s.Platforms[0] != "linux/amd64" || s.Resolve("src") != filepath.Join(dir, "src") || len(s.Overrides) != 2 {
		t.Errorf("Load() = %+v", s)
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "src/a.py", "x")
	cases := []struct {
		desc, body string
		want       []string
	}{
		{"unknown field", "name: x\nbase: {scratch: true}\nlayers: []\ncolour: red\n", []string{"s.yaml:4:", "colour"}},
		{"unknown layer field", "name: x\nbase: {scratch: true}\nlayers:\n  - name: a\n    dir: {src: src, dest: /a, recursive: true}\n", []string{"s.yaml:5:", "recursive"}},
		{"two bases", "name: x\nbase: {scratch: true, image: debian}\n", []string{"s.yaml:2:", "exactly one of scratch"}},
		{"relative dest", "name: x\nbase: {scratch: true}\nlayers:\n  - name: a\n    dir: {src: src, dest: opt/a}\n", []string{"s.yaml:5:", "not an absolute path"}},
		{"dest escaping", "name: x\nbase: {scratch: true}\nlayers:\n  - name: a\n    file: {src: src/a.py, dest: /opt/../../etc/passwd}\n", []string{"s.yaml:5:", "escapes its root"}},
		{"duplicate dest", "name: x\nbase: {scratch: true}\nlayers:\n  - name: a\n    file: {src: src/a.py, dest: /a}\n  - name: b\n    file: {src: src/a.py, dest: /a}\n", []string{"s.yaml:7:", "also written by layer a"}},
		{"missing source", "name: x\nbase: {scratch: true}\nlayers:\n  - name: a\n    dir: {src: nope, dest: /a}\n", []string{"s.yaml:5:", "layers.0.dir.src", "no such file"}},
		{"two sources", "name: x\nbase: {scratch: true}\nlayers:\n  - name: a\n    dir: {src: src, dest: /a}\n    file: {src: src/a.py, dest: /b}\n", []string{"s.yaml:4:", "exactly one of dir, file, go, wheels"}},
		{"bad mode", "name: x\nbase: {scratch: true}\nlayers:\n  - name: a\n    file: {src: src/a.py, dest: /a, mode: '999'}\n", []string{"s.yaml:5:", "octal"}},
		{"bad size", "name: x\nbase: {scratch: true}\nlayers:\n  - name: w\n    wheels: {lock: src/a.py, wheelhouse: src, sitePackages: /s, scripts: /b, ownLayerOver: big}\n", []string{"s.yaml:5:", "ownLayerOver"}},
		{"bad platform", "name: x\nbase: {scratch: true}\nplatforms: [linux/amd64, Windows]\n", []string{"s.yaml:3:", "Windows"}},
		{"bad name", "name: X Y\nbase: {scratch: true}\n", []string{"s.yaml:1:", "name"}},
		{"wrong type", "name: x\nbase: {scratch: maybe}\n", []string{"s.yaml:2:", "scratch"}},
		{"relative override", "name: x\nbase: {scratch: true}\noverrides: [/etc/motd, etc/passwd]\n", []string{"s.yaml:3:", "overrides.1", "not an absolute path"}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			p := write(t, dir, "s.yaml", c.body)
			_, err := Load(p)
			if err == nil {
				t.Fatal("Load() = nil error")
			}
			if missing := testsupport.InOrder(err.Error(), c.want...); missing != "" {
				t.Fatalf("Load() error %q lacks %q (in order %q)", err, missing, c.want)
			}
		})
	}
}

func TestLoadDirChecksBases(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", "name: a\nbase: {spec: b}\n")
	write(t, dir, "b.yaml", "name: b\nbase: {spec: a}\n")
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("LoadDir with a cycle = %v", err)
	}
	write(t, dir, "b.yaml", "name: b\nbase: {spec: c}\n")
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), `base spec "c"`) {
		t.Errorf("LoadDir with a missing base = %v", err)
	}
}
