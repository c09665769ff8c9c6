package assemble

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/wheel"
	"github.com/vision-platform/vp/internal/testsupport"
)

func loadFrameworks(t *testing.T) map[string]*imagespec.Spec {
	t.Helper()
	specs, err := imagespec.LoadDir(filepath.Join("..", "frameworks"))
	if err != nil {
		t.Fatal(err)
	}
	return specs
}

func TestFrameworkSpecs(t *testing.T) {
	specs := loadFrameworks(t)
	for _, name := range []string{"base", "runtime", "torchvision", "timm", "ultralytics", "huggingface", "paddle"} {
		s, ok := specs[name]
		if !ok {
			t.Errorf("no %s spec", name)
			continue
		}
		switch name {
		case "base", "runtime":
			if s.Base.Rootfs == "" {
				t.Errorf("%s: base %+v, want a root filesystem", name, s.Base)
			}
		default:
			if s.Base.Spec != "runtime" || s.Framework == "" {
				t.Errorf("%s: base %q framework %q, want base runtime and a framework", name, s.Base.Spec, s.Framework)
			}
		}
	}
	// runtime is base's Python with system libraries and no layers; each
	// image built on it ends with base's agent and SDK layers, so they are
	// shared byte for byte and an SDK change leaves the wheel layers under
	// them as they were.
	if n := len(specs["runtime"].Layers); n != 0 {
		t.Errorf("runtime has %d layers, want none (the framework images put the agent and SDK on top)", n)
	}
	for name, s := range specs {
		if s.Base.Spec != "runtime" {
			continue
		}
		if len(s.Layers) < 2 {
			t.Errorf("%s: %d layers, want its own and then the agent and SDK", name, len(s.Layers))
			continue
		}
		if diff := cmp.Diff(specs["base"].Layers, s.Layers[len(s.Layers)-2:]); diff != "" {
			t.Errorf("%s: the top layers are not base's agent and SDK (-base +%s):\n%s", name, name, diff)
		}
	}
	forbids := strings.Join(specs["paddle"].Forbid, ",")
	if !strings.Contains(forbids, "torch") {
		t.Errorf("paddle forbids %q, want torch", forbids)
	}
	in, err := os.ReadFile(filepath.Join("..", "frameworks", "requirements", "paddle.in"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(in), "\n") {
		if line, _, _ = strings.Cut(line, "#"); strings.Contains(line, "torch") {
			t.Errorf("paddle's requirements name torch: %q", line)
		}
	}
}

// wheelLayers lists the wheels layers of the framework specs, by spec.
func wheelLayers(t *testing.T, specs map[string]*imagespec.Spec) map[string]*imagespec.WheelSource {
	t.Helper()
	out := map[string]*imagespec.WheelSource{}
	for name, s := range specs {
		for _, l := range s.Layers {
			if l.Wheels != nil {
				if out[name] != nil {
					t.Fatalf("%s has two wheels layers", name)
				}
				out[name] = l.Wheels
			}
		}
	}
	return out
}

// TestFrameworkLocks reads every framework lock as the builder does: each
// parses and pins at least one sha256 for every wheel, pins nothing its spec
// forbids (paddle: no torch), pins every name its requirements ask for at
// the version they pin exactly (a requirements file edited without running
// vp images lock fails here), and every torch image pins the same torch and
// CUDA wheels, so those layers are shared.
func TestFrameworkLocks(t *testing.T) {
	specs := loadFrameworks(t)
	layers := wheelLayers(t, specs)
	if len(layers) < 8 {
		t.Fatalf("%d specs with a wheels layer, want the 8 frameworks'", len(layers))
	}
	locks := map[string]map[string]wheel.Requirement{} // spec -> normalized name -> pin
	for name, w := range layers {
		s := specs[name]
		reqs, err := wheel.ParseLock(s.Resolve(w.Lock))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		pins := map[string]wheel.Requirement{}
		for _, r := range reqs {
			if len(r.Hashes) == 0 {
				t.Errorf("%s: %s==%s pins no sha256", w.Lock, r.Name, r.Version)
			}
			for _, h := range r.Hashes {
				if len(h) != 64 {
					t.Errorf("%s: %s==%s pins %q, not a sha256", w.Lock, r.Name, r.Version, h)
				}
			}
			pins[wheel.Normalize(r.Name)] = r
		}
		locks[name] = pins
		if err := checkForbidden(s, w, reqs); err != nil {
			t.Error(err)
		}
		asked, err := readRequirements(s.Resolve(w.Requirements))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for n, version := range asked {
			pin, ok := pins[n]
			switch {
			case !ok:
				t.Errorf("%s asks for %s, and %s does not pin it: run vp images lock %s", w.Requirements, n, w.Lock, name)
			case version != "" && wheel.NormalizeVersion(version) != wheel.NormalizeVersion(pin.Version):
				t.Errorf("%s pins %s==%s, and %s has %s: run vp images lock %s", w.Requirements, n, version, w.Lock, pin.Version, name)
			}
		}
	}
	for _, n := range []string{"torch", "torchvision", "triton"} {
		if _, ok := locks["paddle"][n]; ok {
			t.Errorf("the paddle lock pins %s", n)
		}
	}
	// The versions the catalog's facts are for (registry/models).
	for _, c := range []struct{ spec, name, version string }{
		{"timm", "timm", "1.0.12"},
		{"ultralytics", "ultralytics", "8.3.40"},
	} {
		if got := locks[c.spec][c.name].Version; got != c.version {
			t.Errorf("%s pins %s %q, want %s (registry/models/%s.yaml)", c.spec, c.name, got, c.version, c.spec)
		}
	}
	// One torch, and one of each CUDA library, in every torch image.
	ref := locks["torchvision"]
	if _, ok := ref["torch"]; !ok {
		t.Fatal("the torchvision lock pins no torch")
	}
	for name, pins := range locks {
		if _, ok := pins["torch"]; !ok {
			continue
		}
		for n, want := range ref {
			if n != "torch" && n != "triton" && !strings.HasPrefix(n, "nvidia-") {
				continue
			}
			if got := pins[n]; !slices.Equal(got.Hashes, want.Hashes) {
				t.Errorf("%s pins %s==%s %v, the torchvision image %s %v: the layer would not be shared", name, n, got.Version, got.Hashes, want.Version, want.Hashes)
			}
		}
	}
}

var requirementRE = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==\s*([^\s;,]+)\s*$)?`)

// readRequirements reads the names a requirements file asks for, following
// -r, with the version of those pinned with == alone.
func readRequirements(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "-r "):
			inner, err := readRequirements(filepath.Join(filepath.Dir(file), strings.TrimSpace(strings.TrimPrefix(line, "-r "))))
			if err != nil {
				return nil, err
			}
			for k, v := range inner {
				out[k] = v
			}
		default:
			m := requirementRE.FindStringSubmatch(line)
			if m == nil {
				return nil, errors.New(file + ": cannot read " + line)
			}
			out[wheel.Normalize(m[1])] = m[4]
		}
	}
	return out, sc.Err()
}

// TestMissingLockSaysHow: a wheels layer whose lock does not exist yet
// fails the build with ErrLockMissing, saying how to make the lock.
func TestMissingLockSaysHow(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "requirements", "fw.in"), "timm==1.0.12\n", 0o644)
	writeFile(t, filepath.Join(dir, "fw.yaml"), `name: fw
base: {scratch: true}
layers:
  - name: wheels
    wheels: {requirements: requirements/fw.in, lock: locks/fw.lock, wheelhouse: wheels, sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin}
`, 0o644)
	specs := must[map[string]*imagespec.Spec](t)(imagespec.LoadDir(dir))
	b := must[*Builder](t)(New(must[*Cache](t)(OpenCache(t.TempDir())), specs))
	_, err := b.Build(context.Background(), "fw")
	if !errors.Is(err, ErrLockMissing) || !strings.Contains(err.Error(), "lock file locks/fw.lock is missing: generate it with vp images lock fw") {
		t.Errorf("Build(fw) without its lock = %v, want ErrLockMissing saying how to make it", err)
	}
}

// TestInt_BuildBaseFramework builds the real base spec: the Debian rootfs,
// the agent and the SDK.
func TestInt_BuildBaseFramework(t *testing.T) {
	testsupport.Integration(t)
	testsupport.Rootfs(t)
	specs := loadFrameworks(t)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenCache(filepath.Join(home, ".cache", "vision-platform", "test-images"))
	if err != nil {
		t.Fatal(err)
	}
	b := must[*Builder](t)(New(c, specs))
	r, err := b.Build(context.Background(), "base")
	if err != nil {
		t.Fatalf("Build(base) = %v", err)
	}
	fs := files(t, r.Artifact.Image())
	for _, p := range []string{"/opt/vp/bin/vp-agent", "/opt/vp/site-packages/vp_sdk/run.py", "/opt/vp/site-packages/vp_sdk/adapters/torchvision_adapter.py", "/usr/bin/python3"} {
		if _, ok := fs[p]; !ok {
			t.Errorf("base image lacks %s", p)
		}
	}
}
