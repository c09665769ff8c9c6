package build

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/vision-platform/vp/images/spec"
	"github.com/vision-platform/vp/images/wheel"
)

// fixture lays out a small platform: a base spec (a dir and a Go binary),
// two framework specs on it sharing a big wheel, and their wheelhouse.
type fixture struct {
	dir   string
	specs map[string]*spec.Spec
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	w := func(name, body string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	w("sdk/vp_sdk/__init__.py", "VERSION = 1\n", 0o644)
	w("sdk/vp_sdk/run.sh", "#!/bin/sh\necho run\n", 0o775)
	w("sdk/vp_sdk/__pycache__/x.pyc", "junk", 0o644)
	if err := os.Symlink("__init__.py", filepath.Join(dir, "sdk/vp_sdk/alias.py")); err != nil {
		t.Fatal(err)
	}
	w("adapters/timm.py", "import timm\n", 0o644)
	w("adapters/hf.py", "import transformers\n", 0o644)
	house := filepath.Join(dir, "wheels")
	os.MkdirAll(house, 0o755)
	big := make([]byte, 100<<10) // incompressible: a "big" wheel at a 64Ki threshold
	rand.NewChaCha8([32]byte{1}).Read(big)
	_, torchSum, err := wheel.Make(house, "torch", "2.1.0", map[string][]byte{"torch/__init__.py": []byte("import torch._C\n"), "torch/lib.bin": big}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, timmSum, _ := wheel.Make(house, "timm", "0.9.0", map[string][]byte{"timm/__init__.py": []byte("")}, nil)
	_, tfSum, _ := wheel.Make(house, "transformers", "4.40.0", map[string][]byte{"transformers/__init__.py": []byte(""),
		"transformers-4.40.0.dist-info/entry_points.txt": []byte("[console_scripts]\ntransformers-cli = transformers.commands:main\n")}, nil)
	_, paddleSum, _ := wheel.Make(house, "paddlepaddle", "2.6.0", map[string][]byte{"paddle/__init__.py": []byte("")}, nil)
	w("timm.lock", fmt.Sprintf("torch==2.1.0 --hash=sha256:%s\ntimm==0.9.0 --hash=sha256:%s\n", torchSum, timmSum), 0o644)
	w("hf.lock", fmt.Sprintf("torch==2.1.0 --hash=sha256:%s\ntransformers==4.40.0 --hash=sha256:%s\n", torchSum, tfSum), 0o644)
	w("paddle.lock", fmt.Sprintf("paddlepaddle==2.6.0 --hash=sha256:%s\n", paddleSum), 0o644)
	w("paddle-bad.lock", fmt.Sprintf("paddlepaddle==2.6.0 --hash=sha256:%s\ntorch==2.1.0 --hash=sha256:%s\n", paddleSum, torchSum), 0o644)
	wheels := func(lock string) string {
		return fmt.Sprintf("  - name: wheels\n    wheels: {lock: %s, wheelhouse: ../wheels, sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin, ownLayerOver: 64Ki}\n", lock)
	}
	wd, _ := os.Getwd()
	w("specs/base.yaml", fmt.Sprintf(`name: base
base: {scratch: true}
env: {PATH: /opt/vp/bin, PYTHONPATH: /opt/vp/site-packages}
entrypoint: [/opt/vp/bin/hello]
workingDir: /workspace
labels: {org.opencontainers.image.source: https://example.invalid/vp}
layers:
  - name: agent
    go: {package: ./testdata/hello, dest: /opt/vp/bin/hello, dir: %s}
  - name: sdk
    dir: {src: ../sdk, dest: /opt/vp/site-packages, exclude: ["**/__pycache__"]}
`, wd), 0o644)
	w("specs/timm.yaml", "name: timm\nbase: {spec: base}\nframework: timm\nfamilies: [resnet, vit]\nlayers:\n"+wheels("../timm.lock")+
		"  - name: adapter\n    file: {src: ../adapters/timm.py, dest: /opt/vp/adapters/timm.py}\n", 0o644)
	w("specs/hf.yaml", "name: huggingface\nbase: {spec: base}\nframework: huggingface\nlayers:\n"+wheels("../hf.lock")+
		"  - name: adapter\n    file: {src: ../adapters/hf.py, dest: /opt/vp/adapters/hf.py}\n", 0o644)
	w("specs/paddle.yaml", "name: paddle\nbase: {spec: base}\nforbid: [torch]\nlayers:\n"+wheels("../paddle.lock"), 0o644)
	specs, err := spec.LoadDir(filepath.Join(dir, "specs"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, specs: specs}
}

func (f *fixture) builder(t *testing.T, cacheDir string) *Builder {
	t.Helper()
	c, err := OpenCache(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(c, f.specs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// files lists the flattened filesystem of img: path -> mode and content.
func files(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out["/"+strings.TrimSuffix(h.Name, "/")] = h
	}
}

func TestInt_BuildFrameworkImages(t *testing.T) {
	f := newFixture(t)
	cacheDir := t.TempDir()
	b := f.builder(t, cacheDir)
	ctx := context.Background()
	timm, err := b.Build(ctx, "timm")
	if err != nil {
		t.Fatalf("Build(timm) = %v", err)
	}
	if err := validate.Image(timm.Image); err != nil {
		t.Fatalf("validate.Image(timm) = %v", err)
	}
	fs := files(t, timm.Image)
	for p, mode := range map[string]int64{
		"/opt/vp/bin/hello": 0o755, "/opt/vp/site-packages/vp_sdk/__init__.py": 0o644, "/opt/vp/site-packages/vp_sdk/run.sh": 0o755,
		"/opt/vp/site-packages/torch/lib.bin": 0o644, "/opt/vp/site-packages/timm/__init__.py": 0o644, "/opt/vp/adapters/timm.py": 0o644,
		"/opt/vp/site-packages/torch-2.1.0.dist-info/INSTALLER": 0o644,
	} {
		h, ok := fs[p]
		if !ok {
			t.Errorf("timm image lacks %s", p)
			continue
		}
		if h.Mode != mode || h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: mode %o uid %d gid %d mtime %v; want %o, 0, 0, epoch", p, h.Mode, h.Uid, h.Gid, h.ModTime, mode)
		}
	}
	if h := fs["/opt/vp/site-packages/vp_sdk/alias.py"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "__init__.py" {
		t.Errorf("symlink alias.py = %+v", h)
	}
	if _, ok := fs["/opt/vp/site-packages/vp_sdk/__pycache__/x.pyc"]; ok {
		t.Error("excluded __pycache__ is in the image")
	}
	cf, _ := timm.Image.ConfigFile()
	if cf.Config.Labels[FrameworkLabel] != "timm" || cf.Config.Labels[FamiliesLabel] != "resnet,vit" || cf.Config.WorkingDir != "/workspace" ||
		len(cf.Config.Entrypoint) != 1 || cf.Created.Unix() != 0 || cf.Config.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("config = %+v", cf.Config)
	}
	// The binary runs.
	if out := runBinary(t, timm.Image, "/opt/vp/bin/hello"); out != "hello from the image\n" {
		t.Errorf("hello printed %q", out)
	}
	names := layerNames(timm)
	if strings.Join(names, ",") != "agent,sdk,wheels/torch,wheels,adapter" {
		t.Errorf("timm layers = %v", names)
	}

	// The torch wheel is the same layer in both framework images.
	hf, err := b.Build(ctx, "huggingface")
	if err != nil {
		t.Fatalf("Build(huggingface) = %v", err)
	}
	if torchOf(timm) == "" || torchOf(timm) != torchOf(hf) {
		t.Errorf("torch layer %s in timm, %s in huggingface: want one shared layer", torchOf(timm), torchOf(hf))
	}
	if _, ok := files(t, hf.Image)["/opt/vp/bin/transformers-cli"]; !ok {
		t.Error("huggingface image lacks the transformers-cli console script")
	}

	// An isolated image refuses a forbidden distribution.
	if _, err := b.Build(ctx, "paddle"); err != nil {
		t.Errorf("Build(paddle) = %v", err)
	}
	os.WriteFile(filepath.Join(f.dir, "paddle.lock"), mustRead(t, filepath.Join(f.dir, "paddle-bad.lock")), 0o644)
	if _, err := f.builder(t, cacheDir).Build(ctx, "paddle"); err == nil || !strings.Contains(err.Error(), "torch is forbidden in paddle") {
		t.Errorf("Build(paddle with torch) = %v, want torch refused", err)
	}

	// Rebuilt with nothing changed: every layer from cache, same digest.
	again, err := f.builder(t, cacheDir).Build(ctx, "timm")
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != timm.Digest || again.Built != 0 {
		t.Errorf("warm rebuild: digest %s (was %s), %d layers built, want the same digest and 0", again.Digest, timm.Digest, again.Built)
	}

	// One adapter file changed: only its layer is built again.
	os.WriteFile(filepath.Join(f.dir, "adapters/timm.py"), []byte("import timm  # v2\n"), 0o644)
	changed, err := f.builder(t, cacheDir).Build(ctx, "timm")
	if err != nil {
		t.Fatal(err)
	}
	if changed.Digest == timm.Digest || changed.Built != 1 || changed.Layers[len(changed.Layers)-1].Cached {
		t.Errorf("after changing the adapter: digest changed %v, %d layers built; want a new digest and 1", changed.Digest != timm.Digest, changed.Built)
	}

	// Reproducible: a fresh cache on the same inputs gives the same digest.
	fresh, err := f.builder(t, t.TempDir()).Build(ctx, "timm")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Digest != changed.Digest {
		t.Errorf("fresh cache digest %s, want %s", fresh.Digest, changed.Digest)
	}
}

// A wheel replaced in the wheelhouse by other bytes under the same name is
// refused, whether its hash is checked before the build or beside it.
func TestInt_WheelNotPinnedIsRefused(t *testing.T) {
	f := newFixture(t)
	house := filepath.Join(f.dir, "wheels")
	// Same name and version, other content.
	if _, _, err := wheel.Make(house, "timm", "0.9.0", map[string][]byte{"timm/__init__.py": []byte("evil = True\n")}, nil); err != nil {
		t.Fatal(err)
	}
	b := f.builder(t, t.TempDir())
	for i := 0; i < 2; i++ { // cold (hashed beside the build), then with the hash known
		_, err := b.Build(context.Background(), "timm")
		if err == nil || !strings.Contains(err.Error(), "timm") || !(strings.Contains(err.Error(), "does not pin") || strings.Contains(err.Error(), "no wheel with an allowed hash")) {
			t.Errorf("build %d with a wheel the lock does not pin = %v", i+1, err)
		}
	}
}

func TestWriteTarRefusesDuplicates(t *testing.T) {
	es := []Entry{{Path: "/a/b", Type: tar.TypeReg, Data: []byte("1"), From: "x"}, {Path: "/a/b", Type: tar.TypeReg, Data: []byte("2"), From: "y"}}
	if err := writeTar(io.Discard, es, epoch0); err == nil || !strings.Contains(err.Error(), "duplicate path /a/b: from x and from y") {
		t.Errorf("writeTar(duplicate) = %v", err)
	}
	es = []Entry{{Path: "/a", Type: tar.TypeReg, Data: []byte("1"), From: "x"}, {Path: "/a/b", Type: tar.TypeReg, Data: []byte("2"), From: "y"}}
	if err := writeTar(io.Discard, es, epoch0); err == nil {
		t.Error("writeTar(file as a directory) = nil")
	}
}

func TestDirSourceRefusesEscapingSymlink(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.Symlink("../../etc/passwd", filepath.Join(dir, "src", "evil"))
	os.WriteFile(filepath.Join(dir, "s.yaml"), []byte("name: x\nbase: {scratch: true}\nlayers:\n  - name: a\n    dir: {src: src, dest: /a}\n"), 0o644)
	s, err := spec.Load(filepath.Join(dir, "s.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := OpenCache(t.TempDir())
	b, _ := New(c, map[string]*spec.Spec{"x": s})
	if _, err := b.Build(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "escapes its root") {
		t.Errorf("Build with an escaping symlink = %v", err)
	}
}

func layerNames(r *Result) []string {
	var out []string
	for _, l := range r.Layers {
		out = append(out, l.Name)
	}
	return out
}

func torchOf(r *Result) string {
	for _, l := range r.Layers {
		if l.Name == "wheels/torch" {
			return l.Digest
		}
	}
	return ""
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runBinary extracts one file of img and runs it.
func runBinary(t *testing.T, img v1.Image, p string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not found: %v", p, err)
		}
		if "/"+h.Name == p {
			out := filepath.Join(t.TempDir(), "bin")
			b, _ := io.ReadAll(tr)
			os.WriteFile(out, b, 0o755)
			res, err := exec.Command(out).Output()
			if err != nil {
				t.Fatalf("running %s: %v", p, err)
			}
			return string(res)
		}
	}
}

var epoch0 = time.Unix(0, 0)

// A spec with two platforms builds an index whose images carry the Go
// binary built for each.
func TestInt_MultiPlatformIndex(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	os.WriteFile(filepath.Join(dir, "multi.yaml"), []byte(fmt.Sprintf(`name: multi
base: {scratch: true}
platforms: [linux/amd64, linux/arm64]
layers:
  - name: hello
    go: {package: ./testdata/hello, dest: /hello, dir: %s}
`, wd)), 0o644)
	s, err := spec.Load(filepath.Join(dir, "multi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := OpenCache(t.TempDir())
	b, _ := New(c, map[string]*spec.Spec{"multi": s})
	r, err := b.Build(context.Background(), "multi")
	if err != nil {
		t.Fatal(err)
	}
	if r.Index == nil {
		t.Fatal("two platforms gave no index")
	}
	if err := validate.Index(r.Index); err != nil {
		t.Fatalf("validate.Index = %v", err)
	}
	m, _ := r.Index.IndexManifest()
	if len(m.Manifests) != 2 {
		t.Fatalf("index has %d manifests", len(m.Manifests))
	}
	var layers []string
	for _, d := range m.Manifests {
		img, _ := r.Index.Image(d.Digest)
		cf, _ := img.ConfigFile()
		if cf.OS+"/"+cf.Architecture != d.Platform.OS+"/"+d.Platform.Architecture {
			t.Errorf("manifest for %v holds a %s/%s config", d.Platform, cf.OS, cf.Architecture)
		}
		ls, _ := img.Layers()
		dg, _ := ls[0].Digest()
		layers = append(layers, dg.String())
	}
	if layers[0] == layers[1] {
		t.Error("amd64 and arm64 images share the Go binary layer")
	}
	built, err := c.Lookup("multi")
	if err != nil || built.Index == nil {
		t.Errorf("Lookup(multi) = %+v, %v", built, err)
	}
}

// TestInt_VerifyRecord: a wheel pinned by its lock whose member differs
// from its own RECORD (same size) builds by default, the lock vouching for
// every byte, and is refused with verifyRecord.
func TestInt_VerifyRecord(t *testing.T) {
	dir := t.TempDir()
	house := filepath.Join(dir, "wheels")
	os.MkdirAll(house, 0o755)
	_, sum, err := wheel.Make(house, "demo", "1.0", map[string][]byte{"demo/__init__.py": []byte("a = 1\n")},
		map[string][]byte{"demo/__init__.py": []byte("a = 2\n")})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "demo.lock"), []byte("demo==1.0 --hash=sha256:"+sum+"\n"), 0o644)
	for _, verify := range []bool{false, true} {
		os.WriteFile(filepath.Join(dir, "demo.yaml"), []byte(fmt.Sprintf(`name: demo
base: {scratch: true}
layers:
  - name: wheels
    wheels: {lock: demo.lock, wheelhouse: wheels, sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin, verifyRecord: %v}
`, verify)), 0o644)
		specs, err := spec.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		cache, err := OpenCache(filepath.Join(dir, "cache"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := New(cache, specs)
		_, err = b.Build(context.Background(), "demo")
		switch {
		case !verify && err != nil:
			t.Errorf("build without verifyRecord = %v, want the pinned wheel installed", err)
		case verify && (err == nil || !strings.Contains(err.Error(), "does not match RECORD")):
			t.Errorf("build with verifyRecord = %v, want the member refused against RECORD", err)
		}
	}
}
