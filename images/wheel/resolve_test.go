package wheel

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vision-platform/vp/images/wheel/wheeltest"
	"github.com/vision-platform/vp/internal/testsupport"
)

// dist is a wheel the resolver tests serve.
type dist struct {
	name, version string
	requires      []string
}

// makeDists writes wheels carrying METADATA (with Requires-Dist, which
// pip's resolver reads) and returns file name -> sha256.
func makeDists(t *testing.T, dir string, ds []dist) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, d := range ds {
		meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", d.name, d.version)
		for _, r := range d.requires {
			meta += "Requires-Dist: " + r + "\n"
		}
		p, sum, err := wheeltest.Make(dir, d.name, d.version, map[string][]byte{
			d.name + "/__init__.py":                          []byte("__version__ = '" + d.version + "'\n"),
			d.name + "-" + d.version + ".dist-info/METADATA": []byte(meta),
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sums[filepath.Base(p)] = sum
	}
	return sums
}

// pep691 serves dir as a PEP 691 (JSON) simple index, and records the
// projects asked for.
func pep691(t *testing.T, dir string, sums map[string]string) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if project, ok := strings.CutPrefix(r.URL.Path, "/simple/"); ok {
			project = strings.TrimSuffix(project, "/")
			mu.Lock()
			asked = append(asked, project)
			mu.Unlock()
			var files []map[string]any
			for fn, sum := range sums {
				if Normalize(strings.SplitN(fn, "-", 2)[0]) == project {
					files = append(files, map[string]any{"filename": fn, "url": "/files/" + fn, "hashes": map[string]string{"sha256": sum}})
				}
			}
			if files == nil {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
			if err := json.NewEncoder(w).Encode(map[string]any{"meta": map[string]string{"api-version": "1.0"}, "name": project, "files": files}); err != nil {
				t.Errorf("serving %s: %v", project, err)
			}
			return
		}
		if fn, ok := strings.CutPrefix(r.URL.Path, "/files/"); ok {
			http.ServeFile(w, r, filepath.Join(dir, filepath.Base(fn)))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), asked...) }
}

func requirePip(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(testsupport.Python, "-m", "pip", "--version").CombinedOutput(); err != nil {
		t.Fatalf("%s has no pip (run make deps: it installs python3-pip): %v\n%s", testsupport.Python, err, out)
	}
}

func TestCompatibleTags(t *testing.T) {
	for _, c := range []struct {
		tag        string
		n          int
		has, hasnt []string
	}{
		{"manylinux_2_36_x86_64", 32 + 3, []string{"manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "manylinux_2_5_x86_64"}, []string{"manylinux_2_37_x86_64", "manylinux_2_4_x86_64", "linux_x86_64"}},
		{"manylinux_2_36_aarch64", 20 + 1, []string{"manylinux_2_36_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"}, []string{"manylinux_2_16_aarch64", "manylinux2010_aarch64", "manylinux_2_36_x86_64"}},
		{"manylinux_2_17_s390x", 2, []string{"manylinux_2_17_s390x", "manylinux2014_s390x"}, nil},
		{"win_amd64", 1, []string{"win_amd64"}, nil},
	} {
		got := compatibleTags(c.tag)
		if got[0] != c.tag {
			t.Errorf("compatibleTags(%s) starts with %s, want the tag itself first", c.tag, got[0])
		}
		if len(got) != c.n {
			t.Errorf("compatibleTags(%s) has %d tags, want %d: %v", c.tag, len(got), c.n, got)
		}
		set := map[string]bool{}
		for _, g := range got {
			set[g] = true
		}
		for _, h := range c.has {
			if !set[h] {
				t.Errorf("compatibleTags(%s) lacks %s", c.tag, h)
			}
		}
		for _, h := range c.hasnt {
			if set[h] {
				t.Errorf("compatibleTags(%s) has %s", c.tag, h)
			}
		}
	}
}

// TestInt_Resolve runs pip's real resolver against a PEP 691 index and a
// wheel directory served here: dependencies are followed, the newest
// allowed version wins, every pin carries the sha256 of the file served,
// and the lock written reads back.
func TestInt_Resolve(t *testing.T) {
	testsupport.Integration(t)
	requirePip(t)
	house := t.TempDir()
	sums := makeDists(t, house, []dist{
		{name: "torch", version: "2.4.0"},
		{name: "torch", version: "2.5.1"},
		{name: "torchvision", version: "0.20.1", requires: []string{"torch==2.5.1", "pillow"}},
		{name: "pillow", version: "10.4.0"},
		{name: "pillow", version: "11.0.0"},
		{name: "timm", version: "1.0.12", requires: []string{"torchvision", "pyyaml"}},
		{name: "PyYAML", version: "6.0.2"},
		{name: "unrelated", version: "1.0"},
	})
	dir := t.TempDir()
	in := filepath.Join(dir, "timm.in")
	writeFile(t, in, "# what the image asks for\ntimm==1.0.12\npillow<11\n")
	want := map[string]string{"pillow": "10.4.0", "pyyaml": "6.0.2", "timm": "1.0.12", "torch": "2.5.1", "torchvision": "0.20.1"}
	check := func(t *testing.T, reqs []Requirement, hashesEach int) {
		t.Helper()
		if len(reqs) != len(want) {
			t.Fatalf("resolved %d wheels, want %d: %+v", len(reqs), len(want), reqs)
		}
		for _, r := range reqs {
			n := Normalize(r.Name)
			if want[n] != r.Version {
				t.Errorf("%s resolved to %s, want %s", r.Name, r.Version, want[n])
			}
			var file string
			for fn := range sums {
				if Normalize(strings.SplitN(fn, "-", 2)[0]) == n && strings.Contains(fn, "-"+r.Version+"-") {
					file = fn
				}
			}
			if len(r.Hashes) != hashesEach || r.Hashes[0] != sums[file] {
				t.Errorf("%s==%s pinned to %v, want the sha256 of %s (%s)", r.Name, r.Version, r.Hashes, file, sums[file])
			}
		}
	}

	t.Run("index", func(t *testing.T) {
		srv, asked := pep691(t, house, sums)
		reqs, err := Resolve(context.Background(), in, ResolveOptions{Python: testsupport.Python, Index: srv.URL + "/simple", PythonVersion: "3.11", Platforms: []string{"manylinux_2_36_x86_64"}})
		if err != nil {
			t.Fatal(err)
		}
		check(t, reqs, 1)
		if a := strings.Join(asked(), ","); !strings.Contains(a, "timm") || !strings.Contains(a, "torch") || strings.Contains(a, "unrelated") {
			t.Errorf("projects asked of the index: %s", a)
		}
		// The lock reads back as written, in name order.
		var b bytes.Buffer
		if err := WriteLock(&b, "from timm.in\n(python 3.11)", reqs); err != nil {
			t.Fatal(err)
		}
		lock := filepath.Join(dir, "timm.lock")
		writeFile(t, lock, b.String())
		back, err := ParseLock(lock)
		if err != nil {
			t.Fatalf("ParseLock(WriteLock()) = %v\n%s", err, b.String())
		}
		check(t, back, 1)
		if !strings.HasPrefix(b.String(), "# from timm.in\n# (python 3.11)\npillow==10.4.0 \\\n    --hash=sha256:") {
			t.Errorf("lock starts:\n%s", b.String())
		}
	})

	t.Run("find-links, two platforms", func(t *testing.T) {
		reqs, err := Resolve(context.Background(), in, ResolveOptions{Python: testsupport.Python, FindLinks: []string{house}, PythonVersion: "3.11",
			Platforms: []string{"manylinux_2_36_x86_64", "manylinux_2_36_aarch64"}})
		if err != nil {
			t.Fatal(err)
		}
		check(t, reqs, 1) // pure wheels: the same file on both
	})

	t.Run("versions differ between platforms", func(t *testing.T) {
		// app 2.0's wheels declare lib on two platforms only, and lib has
		// a different version on each: the error names both platforms
		// that resolved lib, not the first platform of the list. The
		// wheels carry older manylinux tags than the platforms asked for,
		// as most wheels on PyPI do.
		plat := t.TempDir()
		tagged := func(d dist, tag string) {
			tmp := t.TempDir()
			makeDists(t, tmp, []dist{d})
			from := filepath.Join(tmp, d.name+"-"+d.version+"-py3-none-any.whl")
			if err := os.Rename(from, filepath.Join(plat, d.name+"-"+d.version+"-py3-none-"+tag+".whl")); err != nil {
				t.Fatal(err)
			}
		}
		tagged(dist{name: "app", version: "2.0"}, "manylinux2014_x86_64")
		tagged(dist{name: "app", version: "2.0", requires: []string{"lib"}}, "manylinux_2_17_aarch64")
		tagged(dist{name: "app", version: "2.0", requires: []string{"lib"}}, "manylinux_2_17_ppc64le")
		tagged(dist{name: "lib", version: "1.0"}, "manylinux_2_17_aarch64")
		tagged(dist{name: "lib", version: "2.0"}, "manylinux_2_17_ppc64le")
		req := filepath.Join(dir, "app.in")
		writeFile(t, req, "app\n")
		_, err := Resolve(context.Background(), req, ResolveOptions{Python: testsupport.Python, FindLinks: []string{plat}, PythonVersion: "3.11",
			Platforms: []string{"manylinux_2_36_x86_64", "manylinux_2_36_aarch64", "manylinux_2_36_ppc64le"}})
		want := "lib is 2.0 on manylinux_2_36_ppc64le but 1.0 on manylinux_2_36_aarch64"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Resolve = %v, want an error saying %q", err, want)
		}
	})

	t.Run("unsatisfiable", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.in")
		writeFile(t, bad, "timm==9.9\n")
		_, err := Resolve(context.Background(), bad, ResolveOptions{Python: testsupport.Python, FindLinks: []string{house}, PythonVersion: "3.11", Platforms: []string{"manylinux_2_36_x86_64"}})
		if err == nil || !strings.Contains(err.Error(), "bad.in") || !strings.Contains(err.Error(), "timm==9.9") {
			t.Errorf("Resolve(unsatisfiable) = %v, want an error naming the file and pip's complaint", err)
		}
	})
}
