package assemble

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

	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/wheel/wheeltest"
	"github.com/vision-platform/vp/internal/testsupport"
)

// must fails the test on err, else gives v.
func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func writeFile(t testing.TB, p, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

func makeWheel(t testing.TB, dir, name, version string, files map[string][]byte) (string, string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, sum, err := wheeltest.Make(dir, name, version, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, sum
}

// fixture lays out a small platform: a base spec (a dir and a Go binary),
// two framework specs on it sharing a big wheel, and their wheelhouse.
type fixture struct {
	dir   string
	specs map[string]*imagespec.Spec
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	w := func(name, body string, mode os.FileMode) { writeFile(t, filepath.Join(dir, name), body, mode) }
	w("sdk/vp_sdk/__init__.py", "VERSION = 1\n", 0o644)
	w("sdk/vp_sdk/run.sh", "#!/bin/sh\necho run\n", 0o775)
	w("sdk/vp_sdk/__pycache__/x.pyc", "junk", 0o644)
	if err := os.Symlink("__init__.py", filepath.Join(dir, "sdk/vp_sdk/alias.py")); err != nil {
		t.Fatal(err)
	}
	w("adapters/timm.py", "import timm\n", 0o644)
	w("adapters/hf.py", "import transformers\n", 0o644)
	house := filepath.Join(dir, "wheels")
	big := make([]byte, 100<<10) // incompressible: a "big" wheel at a 64Ki threshold
	rand.NewChaCha8([32]byte{1}).Read(big)
	_, torchSum := makeWheel(t, house, "torch", "2.1.0", map[string][]byte{"torch/__init__.py": []byte("import torch._C\n"), "torch/lib.bin": big})
	_, timmSum := makeWheel(t, house, "timm", "0.9.0", map[string][]byte{"timm/__init__.py": []byte("good = 1\n")})
	_, tfSum := makeWheel(t, house, "transformers", "4.40.0", map[string][]byte{"transformers/__init__.py": []byte(""),
		"transformers-4.40.0.dist-info/entry_points.txt": []byte("[console_scripts]\ntransformers-cli = transformers.commands:main\n")})
	_, paddleSum := makeWheel(t, house, "paddlepaddle", "2.6.0", map[string][]byte{"paddle/__init__.py": []byte("")})
	w("timm.lock", fmt.Sprintf("torch==2.1.0 --hash=sha256:%s\ntimm==0.9.0 --hash=sha256:%s\n", torchSum, timmSum), 0o644)
	w("hf.lock", fmt.Sprintf("torch==2.1.0 --hash=sha256:%s\ntransformers==4.40.0 --hash=sha256:%s\n", torchSum, tfSum), 0o644)
	w("paddle.lock", fmt.Sprintf("paddlepaddle==2.6.0 --hash=sha256:%s\n", paddleSum), 0o644)
	w("paddle-bad.lock", fmt.Sprintf("paddlepaddle==2.6.0 --hash=sha256:%s\ntorch==2.1.0 --hash=sha256:%s\n", paddleSum, torchSum), 0o644)
	wheels := func(lock string) string {
		return fmt.Sprintf("  - name: wheels\n    wheels: {lock: %s, wheelhouse: ../wheels, sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin, ownLayerOver: 64Ki}\n", lock)
	}
	wd := must[string](t)(os.Getwd())
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
	return &fixture{dir: dir, specs: must[map[string]*imagespec.Spec](t)(imagespec.LoadDir(filepath.Join(dir, "specs")))}
}

func (f *fixture) builder(t *testing.T, cacheDir string, opts ...Option) *Builder {
	t.Helper()
	return newBuilder(t, cacheDir, f.specs, opts...)
}

func newBuilder(t *testing.T, cacheDir string, specs map[string]*imagespec.Spec, opts ...Option) *Builder {
	t.Helper()
	c := must[*Cache](t)(OpenCache(cacheDir))
	return must[*Builder](t)(New(c, specs, opts...))
}

// loadSpec writes a spec file into dir and loads the specs of dir.
func loadSpec(t *testing.T, dir, name, body string) map[string]*imagespec.Spec {
	t.Helper()
	writeFile(t, filepath.Join(dir, name+".yaml"), body, 0o644)
	return must[map[string]*imagespec.Spec](t)(imagespec.LoadDir(dir))
}

// files lists the flattened filesystem of img: path -> header.
func files(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer closeChecked(t, rc)
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

// content is the content of one file of img.
func content(t *testing.T, img v1.Image, p string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer closeChecked(t, rc)
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not found: %v", p, err)
		}
		if "/"+h.Name == p {
			return string(must[[]byte](t)(io.ReadAll(tr)))
		}
	}
}

func TestInt_BuildFrameworkImages(t *testing.T) {
	testsupport.Integration(t)
	f := newFixture(t)
	cacheDir := t.TempDir()
	b := f.builder(t, cacheDir)
	ctx := context.Background()
	timm, err := b.Build(ctx, "timm")
	if err != nil {
		t.Fatalf("Build(timm) = %v", err)
	}
	img := timm.Artifact.Image()
	if img == nil || timm.Artifact.IsIndex() {
		t.Fatalf("Build(timm) gave %+v, want an image", timm.Artifact)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image(timm) = %v", err)
	}
	fs := files(t, img)
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
	cf := must[*v1.ConfigFile](t)(img.ConfigFile())
	if cf.Config.Labels[FrameworkLabel] != "timm" || cf.Config.Labels[FamiliesLabel] != "resnet,vit" || cf.Config.WorkingDir != "/workspace" ||
		len(cf.Config.Entrypoint) != 1 || cf.Created.Unix() != 0 || cf.Config.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("config = %+v", cf.Config)
	}
	// The binary runs.
	if out := runBinary(t, img, "/opt/vp/bin/hello"); out != "hello from the image\n" {
		t.Errorf("hello printed %q", out)
	}
	if names := strings.Join(layerNames(timm), ","); names != "agent,sdk,wheels/torch,wheels,adapter" {
		t.Errorf("timm layers = %v", names)
	}
	if timm.CacheHit() || timm.Reference != "" || timm.Output != "" {
		t.Errorf("cold build: cache hit %v, reference %q, output %q; want a build, neither pushed nor written", timm.CacheHit(), timm.Reference, timm.Output)
	}

	// The torch wheel is the same layer in both framework images.
	hf, err := b.Build(ctx, "huggingface")
	if err != nil {
		t.Fatalf("Build(huggingface) = %v", err)
	}
	if torchOf(timm) == "" || torchOf(timm) != torchOf(hf) {
		t.Errorf("torch layer %s in timm, %s in huggingface: want one shared layer", torchOf(timm), torchOf(hf))
	}
	if _, ok := files(t, hf.Artifact.Image())["/opt/vp/bin/transformers-cli"]; !ok {
		t.Error("huggingface image lacks the transformers-cli console script")
	}

	// An isolated image refuses a forbidden distribution.
	if _, err := b.Build(ctx, "paddle"); err != nil {
		t.Errorf("Build(paddle) = %v", err)
	}
	writeFile(t, filepath.Join(f.dir, "paddle.lock"), string(must[[]byte](t)(os.ReadFile(filepath.Join(f.dir, "paddle-bad.lock")))), 0o644)
	if _, err := f.builder(t, cacheDir).Build(ctx, "paddle"); err == nil || !strings.Contains(err.Error(), "torch is forbidden in paddle") {
		t.Errorf("Build(paddle with torch) = %v, want torch refused", err)
	}

	// Rebuilt with nothing changed: every layer from cache, same digest.
	again, err := f.builder(t, cacheDir).Build(ctx, "timm")
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != timm.Digest || !again.CacheHit() {
		t.Errorf("warm rebuild: digest %s (was %s), %d layers built, want the same digest and 0", again.Digest, timm.Digest, again.Built)
	}

	// One adapter file changed: only its layer is built again.
	writeFile(t, filepath.Join(f.dir, "adapters/timm.py"), "import timm  # v2\n", 0o644)
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
// refused, on a cold cache and on a warm one.
func TestInt_WheelNotPinnedIsRefused(t *testing.T) {
	testsupport.Integration(t)
	f := newFixture(t)
	// Same name and version, other content.
	makeWheel(t, filepath.Join(f.dir, "wheels"), "timm", "0.9.0", map[string][]byte{"timm/__init__.py": []byte("evil = True\n")})
	b := f.builder(t, t.TempDir())
	for i := 0; i < 2; i++ {
		_, err := b.Build(context.Background(), "timm")
		if err == nil || !strings.Contains(err.Error(), "timm.lock:2: timm==0.9.0: no wheel with an allowed hash") {
			t.Errorf("build %d with a wheel the lock does not pin = %v", i+1, err)
		}
	}
}

// Issue #11, item 9: a wheel edited in place, its size and modification
// time kept, was installed on the next build on the strength of the hash
// remembered for its stat. It is read again (its change time moved) and
// refused, naming the wheel and the lock.
func TestInt_WheelEditedInPlaceIsRefused(t *testing.T) {
	testsupport.Integration(t)
	f := newFixture(t)
	cacheDir := t.TempDir()
	if _, err := f.builder(t, cacheDir).Build(context.Background(), "timm"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.dir, "wheels", "timm-0.9.0-py3-none-any.whl")
	good := must[[]byte](t)(os.ReadFile(p))
	// A valid wheel of other content and the same size (compressed sizes
	// vary with the content: try a few).
	var bad []byte
	for i := 0; i < 1000 && len(bad) != len(good); i++ {
		evil, _ := makeWheel(t, t.TempDir(), "timm", "0.9.0", map[string][]byte{"timm/__init__.py": []byte(fmt.Sprintf("evil = %d\n", i))})
		bad = must[[]byte](t)(os.ReadFile(evil))
	}
	if len(bad) != len(good) {
		t.Fatalf("no edited wheel of the pinned one's size (%d bytes)", len(good))
	}
	fi := must[os.FileInfo](t)(os.Stat(p))
	w := must[*os.File](t)(os.OpenFile(p, os.O_WRONLY, 0))
	if _, err := w.WriteAt(bad, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	// Another epoch: the wheel's layer is not in the cache and must be made.
	r, err := f.builder(t, cacheDir, WithEpoch(time.Unix(1, 0))).Build(context.Background(), "timm")
	if err == nil {
		t.Fatalf("rebuild with the wheel edited in place succeeded; timm/__init__.py is %q", content(t, r.Artifact.Image(), "/opt/vp/site-packages/timm/__init__.py"))
	}
	if !strings.Contains(err.Error(), "timm.lock:2:") || !strings.Contains(err.Error(), "timm-0.9.0-py3-none-any.whl sha256=") {
		t.Errorf("rebuild with the wheel edited in place = %v, want an error naming the lock and the wheel", err)
	}
}

// Issue #11, item 11: an unpinned wheel was unpacked whole (a zip bomb
// inflates 64 MiB here, 2 GiB in the issue) before its hash was found
// missing from the lock. It is refused before any layer is begun.
func TestInt_UnpinnedWheelIsNotUnpacked(t *testing.T) {
	testsupport.Integration(t)
	dir := t.TempDir()
	makeWheel(t, filepath.Join(dir, "wheels"), "bomb", "1.0", map[string][]byte{"bomb/zeros.bin": make([]byte, 64<<20)})
	writeFile(t, filepath.Join(dir, "bomb.lock"), "bomb==1.0 --hash=sha256:"+strings.Repeat("0", 64)+"\n", 0o644)
	specs := loadSpec(t, dir, "bomb", `name: bomb
base: {scratch: true}
layers:
  - name: wheels
    wheels: {lock: bomb.lock, wheelhouse: wheels, sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin}
`)
	var layerEvents []Event
	b := newBuilder(t, t.TempDir(), specs, WithProgress(func(e Event) {
		if e.Layer != "" {
			layerEvents = append(layerEvents, e)
		}
	}))
	_, err := b.Build(context.Background(), "bomb")
	if err == nil || !strings.Contains(err.Error(), "bomb-1.0-py3-none-any.whl sha256=") {
		t.Errorf("Build(unpinned bomb) = %v, want the wheel refused by its hash", err)
	}
	if len(layerEvents) != 0 {
		t.Errorf("the unpinned wheel's layer was begun: %+v", layerEvents)
	}
}

// Issue #11, item 10: a wheel whose .data/data scheme writes bin/hello
// replaced the binary the base's agent layer installs; only identical dest
// strings were compared. Every path of every layer is now, and the base
// image's paths unless the spec's overrides list them.
func TestInt_PathWrittenTwiceIsRefused(t *testing.T) {
	testsupport.Integration(t)
	f := newFixture(t)
	house := filepath.Join(f.dir, "wheels")
	_, sum := makeWheel(t, house, "evil", "1.0", map[string][]byte{"evil-1.0.data/data/bin/hello": []byte("#!/bin/sh\necho pwned\n")})
	writeFile(t, filepath.Join(f.dir, "evil.lock"), "evil==1.0 --hash=sha256:"+sum+"\n", 0o644)
	spec := func(overrides string) string {
		return "name: evil\nbase: {spec: base}\n" + overrides + `layers:
  - name: wheels
    wheels: {lock: ../evil.lock, wheelhouse: ../wheels, sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin}
`
	}
	specsDir := filepath.Join(f.dir, "specs")
	specs := loadSpec(t, specsDir, "evil", spec(""))
	cacheDir := t.TempDir()
	_, err := newBuilder(t, cacheDir, specs).Build(context.Background(), "evil")
	if err == nil || !strings.Contains(err.Error(), "path written twice: /opt/vp/bin/hello by layer wheels and by layer agent of the base image") {
		t.Errorf("Build(a wheel writing the agent's path) = %v, want the path refused naming both layers", err)
	}

	// Listed in overrides, the base's file may be replaced.
	specs = loadSpec(t, specsDir, "evil", spec("overrides: [/opt/vp/bin/hello]\n"))
	r, err := newBuilder(t, cacheDir, specs).Build(context.Background(), "evil")
	if err != nil {
		t.Fatalf("Build(with overrides) = %v", err)
	}
	if got := content(t, r.Artifact.Image(), "/opt/vp/bin/hello"); got != "#!/bin/sh\necho pwned\n" {
		t.Errorf("with the override, /opt/vp/bin/hello = %q, want the wheel's", got)
	}

	// Two layers of one spec never write the same file, whatever their
	// dest strings.
	writeFile(t, filepath.Join(f.dir, "etc", "motd"), "from the dir\n", 0o644)
	specs = loadSpec(t, specsDir, "twice", `name: twice
base: {scratch: true}
overrides: [/]
layers:
  - name: tree
    dir: {src: ../etc, dest: /etc}
  - name: one
    file: {src: ../adapters/timm.py, dest: /etc/motd}
`)
	_, err = newBuilder(t, cacheDir, specs).Build(context.Background(), "twice")
	if err == nil || !strings.Contains(err.Error(), "path written twice: /etc/motd by layer tree and by layer one") {
		t.Errorf("Build(two layers writing /etc/motd) = %v, want the path refused naming both layers", err)
	}
}

// The builder pushes what it builds and says, for each layer, what the
// push did with it; a second image on the same base reuses its layers.
func TestInt_BuildPushesAndWrites(t *testing.T) {
	testsupport.Integration(t)
	f := newFixture(t)
	host := startRegistry(t)
	pub := newPublisher(t)
	layoutDir := filepath.Join(t.TempDir(), "layout")
	var pushed []Event
	b := f.builder(t, t.TempDir(), WithPush(pub, host+"/vp"), WithOutput("oci:"+layoutDir), WithProgress(func(e Event) {
		if e.Phase == PhasePushed {
			pushed = append(pushed, e)
		}
	}))
	timm, err := b.Build(context.Background(), "timm")
	if err != nil {
		t.Fatalf("Build(timm) = %v", err)
	}
	if want := host + "/vp/timm@" + timm.Digest.String(); timm.Reference != want {
		t.Errorf("Reference = %q, want %q", timm.Reference, want)
	}
	if timm.Output != "oci:"+layoutDir || timm.BytesPushed == 0 || timm.BytesReused != 0 {
		t.Errorf("cold push: output %q, %d bytes pushed, %d reused", timm.Output, timm.BytesPushed, timm.BytesReused)
	}
	for _, l := range timm.Layers {
		if l.Push != "pushed" {
			t.Errorf("layer %s: push %q, want pushed", l.Name, l.Push)
		}
	}
	if len(pushed) != 1 || pushed[0].Reference != timm.Reference || pushed[0].Size != timm.BytesPushed {
		t.Errorf("pushed events = %+v, want one for %s", pushed, timm.Reference)
	}
	hf, err := b.Build(context.Background(), "huggingface")
	if err != nil {
		t.Fatalf("Build(huggingface) = %v", err)
	}
	for _, l := range hf.Layers {
		shared := l.Name == "agent" || l.Name == "sdk" || l.Name == "wheels/torch"
		if shared != l.Push.Reused() {
			t.Errorf("huggingface layer %s: push %q; want it reused: %v", l.Name, l.Push, shared)
		}
	}
	if hf.BytesReused == 0 {
		t.Error("the second image reused no bytes")
	}
	written, err := layoutImage(layoutDir, "huggingface")
	if err != nil || written != hf.Digest {
		t.Errorf("layout holds huggingface as %s (%v), want %s", written, err, hf.Digest)
	}
}

func TestWriteTarRefusesDuplicates(t *testing.T) {
	es := []Entry{{Path: "/a/b", Type: tar.TypeReg, Data: []byte("1"), From: "x"}, {Path: "/a/b", Type: tar.TypeReg, Data: []byte("2"), From: "y"}}
	if _, err := writeTar(io.Discard, es, epoch0); err == nil || !strings.Contains(err.Error(), "path written twice: /a/b: from x and from y") {
		t.Errorf("writeTar(duplicate) = %v", err)
	}
	es = []Entry{{Path: "/a", Type: tar.TypeReg, Data: []byte("1"), From: "x"}, {Path: "/a/b", Type: tar.TypeReg, Data: []byte("2"), From: "y"}}
	if _, err := writeTar(io.Discard, es, epoch0); err == nil {
		t.Error("writeTar(file as a directory) = nil")
	}
}

func TestWriteTarChecksContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	writeFile(t, p, "after", 0o644)
	es := []Entry{{Path: "/f", Type: tar.TypeReg, Size: 5, SHA256: strings.Repeat("0", 64), From: "f",
		Open: func() (io.ReadCloser, error) { return os.Open(p) }}}
	if _, err := writeTar(io.Discard, es, epoch0); err == nil || !strings.Contains(err.Error(), "changed while the layer was written") {
		t.Errorf("writeTar(content not matching its sha256) = %v", err)
	}
}

func buildDirSpec(t *testing.T, dir, src string) (*Result, error) {
	t.Helper()
	specs := loadSpec(t, dir, "x", fmt.Sprintf("name: x\nbase: {scratch: true}\nlayers:\n  - name: a\n    dir: {src: %s, dest: /a}\n", src))
	return newBuilder(t, t.TempDir(), specs).Build(context.Background(), "x")
}

func TestDirSourceRefusesEscapingSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../etc/passwd", filepath.Join(dir, "src", "evil")); err != nil {
		t.Fatal(err)
	}
	if _, err := buildDirSpec(t, dir, "src"); err == nil || !strings.Contains(err.Error(), "escapes its root") {
		t.Errorf("Build with an escaping symlink = %v", err)
	}
}

// Issue #11, item 11: b -> a/.. with a -> . passed the lexical check (a/..
// is the root) though it leads to the root's parent.
func TestDirSourceRefusesEscapingSymlinkChain(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "f"), "x", 0o644)
	if err := os.Symlink(".", filepath.Join(src, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a/..", filepath.Join(src, "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := buildDirSpec(t, dir, "src"); err == nil || !strings.Contains(err.Error(), `symlink to "a/..": symlink escapes its root`) {
		t.Errorf("Build with b -> a/.., a -> . = %v, want b refused", err)
	}
}

func TestCheckLink(t *testing.T) {
	for _, c := range []struct {
		desc  string
		links map[string]string
		rel   string
		ok    bool
	}{
		{"sibling", map[string]string{"l": "f"}, "l", true},
		{"up and back in", map[string]string{"d/l": "../f"}, "d/l", true},
		{"out", map[string]string{"d/l": "../../f"}, "d/l", false},
		{"absolute", map[string]string{"l": "/etc/passwd"}, "l", false},
		{"chain through the root's parent", map[string]string{"a": ".", "b": "a/.."}, "b", false},
		{"chain that stays", map[string]string{"a": "d", "b": "a/.."}, "b", true},
		{"chain out in two steps", map[string]string{"d/up": "..", "l": "d/up/../x"}, "l", false},
		{"out and back in", map[string]string{"l": "../src/f"}, "l", false},
		{"loop", map[string]string{"a": "b", "b": "a"}, "a", false},
		{"dangling", map[string]string{"l": "nothing/here"}, "l", true},
	} {
		if err := checkLink(c.rel, c.links); (err == nil) != c.ok {
			t.Errorf("%s: checkLink(%s, %v) = %v, want ok %v", c.desc, c.rel, c.links, err, c.ok)
		}
	}
}

// Issue #11, item 11: a dir source whose src is a symlink to a directory
// gave an empty layer; it is followed.
func TestDirSourceFollowsSymlinkedSrc(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "real", "pkg", "mod.py"), "x = 1\n", 0o644)
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	r, err := buildDirSpec(t, dir, "link")
	if err != nil {
		t.Fatal(err)
	}
	if got := content(t, r.Artifact.Image(), "/a/pkg/mod.py"); got != "x = 1\n" {
		t.Errorf("/a/pkg/mod.py = %q, want the file under the linked directory", got)
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

// runBinary extracts one file of img and runs it.
func runBinary(t *testing.T, img v1.Image, p string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bin")
	writeFile(t, out, content(t, img, p), 0o755)
	res, err := exec.Command(out).Output()
	if err != nil {
		t.Fatalf("running %s: %v", p, err)
	}
	return string(res)
}

var epoch0 = time.Unix(0, 0)

// A spec with two platforms builds an index whose images carry the Go
// binary built for each.
func TestInt_MultiPlatformIndex(t *testing.T) {
	testsupport.Integration(t)
	dir := t.TempDir()
	wd := must[string](t)(os.Getwd())
	specs := loadSpec(t, dir, "multi", fmt.Sprintf(`name: multi
base: {scratch: true}
platforms: [linux/amd64, linux/arm64]
layers:
  - name: hello
    go: {package: ./testdata/hello, dest: /hello, dir: %s}
`, wd))
	c := must[*Cache](t)(OpenCache(t.TempDir()))
	b := must[*Builder](t)(New(c, specs))
	r, err := b.Build(context.Background(), "multi")
	if err != nil {
		t.Fatal(err)
	}
	idx := r.Artifact.Index()
	if idx == nil || r.Artifact.Image() != nil {
		t.Fatal("two platforms gave no index")
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate.Index = %v", err)
	}
	imgs, platforms, err := r.Artifact.Images()
	if err != nil || len(imgs) != 2 {
		t.Fatalf("index has %d images (%v)", len(imgs), err)
	}
	var layers []string
	for i, img := range imgs {
		cf := must[*v1.ConfigFile](t)(img.ConfigFile())
		if cf.OS+"/"+cf.Architecture != platforms[i].OS+"/"+platforms[i].Architecture {
			t.Errorf("manifest for %v holds a %s/%s config", platforms[i], cf.OS, cf.Architecture)
		}
		ls := must[[]v1.Layer](t)(img.Layers())
		layers = append(layers, must[v1.Hash](t)(ls[0].Digest()).String())
	}
	if layers[0] == layers[1] {
		t.Error("amd64 and arm64 images share the Go binary layer")
	}
	built, err := c.Lookup("multi")
	if err != nil || !built.Artifact.IsIndex() {
		t.Errorf("Lookup(multi) = %+v, %v", built, err)
	}
}

// TestInt_VerifyRecord: a wheel pinned by its lock whose member differs
// from its own RECORD (same size) builds by default, the lock vouching for
// every byte, and is refused with verifyRecord.
func TestInt_VerifyRecord(t *testing.T) {
	testsupport.Integration(t)
	dir := t.TempDir()
	house := filepath.Join(dir, "wheels")
	if err := os.MkdirAll(house, 0o755); err != nil {
		t.Fatal(err)
	}
	_, sum, err := wheeltest.Make(house, "demo", "1.0", map[string][]byte{"demo/__init__.py": []byte("a = 1\n")},
		map[string][]byte{"demo/__init__.py": []byte("a = 2\n")})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "demo.lock"), "demo==1.0 --hash=sha256:"+sum+"\n", 0o644)
	for _, verify := range []bool{false, true} {
		specs := loadSpec(t, dir, "demo", fmt.Sprintf(`name: demo
base: {scratch: true}
layers:
  - name: wheels
    wheels: {lock: demo.lock, wheelhouse: wheels, sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin, verifyRecord: %v}
`, verify))
		_, err = newBuilder(t, filepath.Join(dir, "cache"), specs).Build(context.Background(), "demo")
		switch {
		case !verify && err != nil:
			t.Errorf("build without verifyRecord = %v, want the pinned wheel installed", err)
		case verify && (err == nil || !strings.Contains(err.Error(), "does not match RECORD")):
			t.Errorf("build with verifyRecord = %v, want the member refused against RECORD", err)
		}
	}
}

// closeChecked closes c, failing the test on an error.
func closeChecked(t testing.TB, c io.Closer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Errorf("closing: %v", err)
	}
}
