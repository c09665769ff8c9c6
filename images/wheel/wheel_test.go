package wheel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/images/wheel/wheeltest"
)

var opts = Options{SitePackages: "/opt/vp/site-packages", Scripts: "/opt/vp/bin", Prefix: "/opt/vp", Interpreter: "/usr/bin/python3"}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func makeWheel(t *testing.T, dir, name, version string, files, tamper map[string][]byte) (string, string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, sum, err := wheeltest.Make(dir, name, version, files, tamper)
	if err != nil {
		t.Fatal(err)
	}
	return p, sum
}

func readFile(t *testing.T, f File) string {
	t.Helper()
	if f.Open == nil {
		return string(f.Data)
	}
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer closeChecked(t, rc)
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", f.Path, err)
	}
	return string(b)
}

func closeInstalled(t *testing.T, inst *Installed) {
	t.Helper()
	if err := inst.Close(); err != nil {
		t.Errorf("closing the wheel: %v", err)
	}
}

func TestInstall(t *testing.T) {
	p, _ := makeWheel(t, t.TempDir(), "demo_pkg", "1.2.0", map[string][]byte{
		"demo_pkg/__init__.py":                       []byte("VERSION = '1.2.0'\n"),
		"demo_pkg-1.2.0.data/scripts/demo-tool":      []byte("#!python\nimport demo_pkg\n"),
		"demo_pkg-1.2.0.data/data/share/demo/a.txt":  []byte("data"),
		"demo_pkg-1.2.0.data/headers/demo.h":         []byte("int x;"),
		"demo_pkg-1.2.0.data/platlib/demo_native.py": []byte("native = True\n"),
		"demo_pkg-1.2.0.dist-info/entry_points.txt":  []byte("[console_scripts]\ndemo = demo_pkg.cli:main [extra]\n[other]\nx = y:z\n"),
		"demo_pkg-1.2.0.dist-info/METADATA":          []byte("Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.2.0\n"),
	}, nil)
	inst, err := Install(p, opts)
	if err != nil {
		t.Fatalf("Install() = %v", err)
	}
	defer closeInstalled(t, inst)
	got := map[string]File{}
	for _, f := range inst.Files {
		got[f.Path] = f
	}
	want := map[string]string{
		"/opt/vp/site-packages/demo_pkg/__init__.py":               "VERSION = '1.2.0'\n",
		"/opt/vp/site-packages/demo_native.py":                     "native = True\n",
		"/opt/vp/bin/demo-tool":                                    "#!/usr/bin/python3\nimport demo_pkg\n",
		"/opt/vp/share/demo/a.txt":                                 "data",
		"/opt/vp/include/demo_pkg/demo.h":                          "int x;",
		"/opt/vp/site-packages/demo_pkg-1.2.0.dist-info/INSTALLER": "vp\n",
	}
	for p, content := range want {
		f, ok := got[p]
		if !ok {
			t.Errorf("missing %s", p)
			continue
		}
		if c := readFile(t, f); c != content {
			t.Errorf("%s = %q, want %q", p, c, content)
		}
	}
	if f := got["/opt/vp/bin/demo-tool"]; f.Mode != 0o755 {
		t.Errorf("script mode %o, want 755", f.Mode)
	}
	launcher := readFile(t, got["/opt/vp/bin/demo"])
	if !strings.HasPrefix(launcher, "#!/usr/bin/python3\n") || !strings.Contains(launcher, "from demo_pkg.cli import main") || !strings.Contains(launcher, "sys.exit(main())") {
		t.Errorf("console script launcher:\n%s", launcher)
	}
	if _, ok := got["/opt/vp/bin/x"]; ok {
		t.Error("an entry point outside console_scripts got a launcher")
	}
	record := readFile(t, got["/opt/vp/site-packages/demo_pkg-1.2.0.dist-info/RECORD"])
	for _, line := range []string{"../bin/demo-tool,sha256=", "../bin/demo,sha256=", "../include/demo_pkg/demo.h,", "demo_pkg-1.2.0.dist-info/INSTALLER,sha256=", "demo_pkg-1.2.0.dist-info/RECORD,,", "demo_pkg/__init__.py,sha256="} {
		if !strings.Contains(record, line) {
			t.Errorf("RECORD lacks %q:\n%s", line, record)
		}
	}
	if strings.Contains(record, ".data/") {
		t.Errorf("RECORD still names .data paths:\n%s", record)
	}
}

func TestInstallRefuses(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		desc   string
		files  map[string][]byte
		tamper map[string][]byte
		verify bool // Options.VerifyRecord
		onRead bool
		want   string
	}{
		{desc: "escaping path", files: map[string][]byte{"../evil.py": []byte("x")}, want: "escapes its root"},
		{desc: "file not in RECORD", files: map[string][]byte{"a.py": []byte("x")}, tamper: map[string][]byte{"b.py": []byte("y")}, want: "b.py is not in RECORD"},
		{desc: "size not matching RECORD", files: map[string][]byte{"a.py": []byte("x")}, tamper: map[string][]byte{"a.py": []byte("tampered")}, want: "a.py is 8 bytes; RECORD says 1"},
		{desc: "content not matching RECORD", files: map[string][]byte{"a.py": []byte("x")}, tamper: map[string][]byte{"a.py": []byte("y")}, verify: true, onRead: true, want: "does not match RECORD"},
		{desc: "size not matching RECORD, verifying", files: map[string][]byte{"a.py": []byte("x")}, tamper: map[string][]byte{"a.py": []byte("tampered")}, verify: true, want: "a.py is 8 bytes; RECORD says 1"},
		{desc: "unknown scheme", files: map[string][]byte{"w-1.0.data/weird/a": []byte("x")}, want: "unknown .data scheme"},
		// Issue #11: w-1.0.data/scripts/. is the scripts directory itself:
		// installed, it turned /opt/vp/bin into a regular file.
		{desc: "scripts directory as a file", files: map[string][]byte{"w-1.0.data/scripts/.": []byte("#!/bin/sh\n")}, want: `"w-1.0.data/scripts/." has an empty or . path element`},
		{desc: "dot element", files: map[string][]byte{"pkg/./a.py": []byte("x")}, want: "has an empty or . path element"},
		{desc: "empty element", files: map[string][]byte{"pkg//a.py": []byte("x")}, want: "has an empty or . path element"},
		{desc: "scheme with no file", files: map[string][]byte{"w-1.0.data/scripts": []byte("x")}, want: `names no file under scheme "scripts"`},
		{desc: "entry point named .", files: map[string][]byte{"w-1.0.dist-info/entry_points.txt": []byte("[console_scripts]\n. = pkg:main\n")}, want: "entry_points.txt: line 2"},
	}
	for i, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			p, _ := makeWheel(t, filepath.Join(dir, fmt.Sprint(i)), "w", "1.0", c.files, c.tamper)
			o := opts
			o.VerifyRecord = c.verify
			inst, err := Install(p, o)
			if !c.onRead {
				if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrBadWheel) {
					t.Fatalf("Install() = %v, want ErrBadWheel containing %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closeInstalled(t, inst)
			checked := false
			for _, f := range inst.Files {
				if f.Open == nil || !strings.HasSuffix(f.Path, "a.py") {
					continue
				}
				rc, err := f.Open()
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.ReadAll(rc)
				if cerr := rc.Close(); cerr != nil {
					t.Errorf("closing %s: %v", f.Path, cerr)
				}
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("reading tampered %s: %v, want %q", f.Path, err, c.want)
				}
				checked = true
			}
			if !checked {
				t.Error("no a.py was installed")
			}
		})
	}
}

func TestParseLock(t *testing.T) {
	dir := t.TempDir()
	h := strings.Repeat("a", 64)
	good := filepath.Join(dir, "good.lock")
	writeFile(t, good, "# pinned\ntorch==2.1.0 \\\n    --hash=sha256:"+h+" \\\n    --hash=sha256:"+strings.Repeat("b", 64)+"\n\nPillow[extra]==10.0.1 --hash=sha256:"+h+"  # inline comment\n")
	reqs, err := ParseLock(good)
	if err != nil {
		t.Fatalf("ParseLock() = %v", err)
	}
	want := []Requirement{
		{Name: "torch", Version: "2.1.0", Hashes: []string{h, strings.Repeat("b", 64)}, Line: 2},
		{Name: "Pillow", Version: "10.0.1", Hashes: []string{h}, Line: 6},
	}
	if diff := cmp.Diff(want, reqs); diff != "" {
		t.Errorf("ParseLock() (-want +got):\n%s", diff)
	}
	for _, c := range []struct{ body, want string }{
		{"numpy==1.0\n", "bad.lock:1: numpy has no --hash"},
		{"numpy>=1.0 --hash=sha256:" + h + "\n", "bad.lock:1: \"numpy>=1.0\" is not name==version"},
		{"\n\nnumpy==1 --hash=md5:abc\n", "bad.lock:3:"},
		{"a==1 --hash=sha256:" + h + "\nA==2 --hash=sha256:" + h + "\n", "bad.lock:2: A is also pinned at line 1"},
	} {
		bad := filepath.Join(dir, "bad.lock")
		writeFile(t, bad, c.body)
		if _, err := ParseLock(bad); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseLock(%q) = %v, want %q", c.body, err, c.want)
		}
	}
}

// sums is a Sums keyed by path alone: it never notices a change, the
// worst a stat cache can do.
type sums map[string]string

func (s sums) Sum(p string, _ fs.FileInfo) (string, bool)   { v, ok := s[p]; return v, ok }
func (s sums) Remember(p string, _ fs.FileInfo, sum string) { s[p] = sum }

var _ Sums = sums(nil)

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestWheelhouse(t *testing.T) {
	ctx := context.Background()
	house := t.TempDir()
	p, sum := makeWheel(t, house, "demo", "1.0", map[string][]byte{"demo.py": []byte("x")}, nil)
	req := Requirement{Name: "Demo", Version: "1.0", Hashes: []string{sum}}
	remembered := sums{}
	store := &Store{Dir: t.TempDir()}
	wh := &Wheelhouse{Dir: house, Store: store, Sums: remembered}
	got, gotSum, err := wh.Fetch(ctx, req)
	if err != nil || gotSum != sum {
		t.Fatalf("Wheelhouse.Fetch = %s, %s, %v; want the stored copy of sha256 %s", got, gotSum, err, sum)
	}
	if !strings.HasPrefix(got, store.Dir) || fileSum(t, got) != sum || filepath.Base(got) != filepath.Base(p) {
		t.Errorf("Wheelhouse.Fetch = %s, want a copy in the store %s with the wheel's name and bytes", got, store.Dir)
	}
	if remembered[p] != sum {
		t.Errorf("sum remembered for %s = %q, want %s", p, remembered[p], sum)
	}

	// The wheel edited in place: a stale remembered sum picks the stored
	// copy, never the edited bytes.
	edited := filepath.Join(t.TempDir(), "edited.whl")
	makeWheel(t, filepath.Dir(edited), "demo", "1.0", map[string][]byte{"demo.py": []byte("evil")}, nil)
	if err := os.Rename(filepath.Join(filepath.Dir(edited), filepath.Base(p)), p); err != nil {
		t.Fatal(err)
	}
	got, gotSum, err = wh.Fetch(ctx, req)
	if err != nil || gotSum != sum || fileSum(t, got) != sum {
		t.Errorf("Fetch with a stale sum = %s (sha256 %s), %v; want the stored copy of %s", got, gotSum, err, sum)
	}
	// Without the remembered sum the edited wheel is read, and refused.
	fresh := &Wheelhouse{Dir: house, Store: &Store{Dir: t.TempDir()}, Sums: sums{}}
	_, _, err = fresh.Fetch(ctx, req)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), filepath.Base(p)+" sha256="+fileSum(t, p)) {
		t.Errorf("Fetch of the edited wheel = %v, want ErrNotFound naming the file and its sha256", err)
	}
	if ents, err := os.ReadDir(fresh.Store.Dir); err != nil || len(ents) != 0 {
		t.Errorf("store after a refused wheel holds %v (%v), want nothing", ents, err)
	}

	wrong := req
	wrong.Hashes = []string{strings.Repeat("0", 64)}
	if _, _, err := wh.Fetch(ctx, wrong); !errors.Is(err, ErrNotFound) {
		t.Errorf("Wheelhouse.Fetch with a wrong hash = %v, want ErrNotFound", err)
	}
}

func TestStoreAddRefusesUnpinned(t *testing.T) {
	store := &Store{Dir: t.TempDir()}
	_, sum, err := store.Add(context.Background(), strings.NewReader("not a wheel"), "x-1.0-py3-none-any.whl", func(string) bool { return false })
	var np *NotPinnedError
	if !errors.As(err, &np) || !errors.Is(err, ErrNotPinned) || np.Sum != sum || sum == "" {
		t.Fatalf("Store.Add(unpinned) = %q, %v; want a *NotPinnedError with the sum", sum, err)
	}
	if _, ok := store.Lookup(sum, "x-1.0-py3-none-any.whl"); ok {
		t.Error("the unpinned file was kept")
	}
	ents, err := os.ReadDir(store.Dir)
	if err != nil || len(ents) != 0 {
		t.Errorf("store holds %v (%v), want nothing", ents, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := store.Add(ctx, strings.NewReader("x"), "x-1.0-py3-none-any.whl", func(string) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Errorf("Store.Add(cancelled) = %v, want context.Canceled", err)
	}
}

func TestIndex(t *testing.T) {
	p, sum := makeWheel(t, t.TempDir(), "demo", "1.0", map[string][]byte{"demo.py": []byte("x")}, nil)
	req := Requirement{Name: "Demo", Version: "1.0", Hashes: []string{sum}}
	var accept string
	liar := strings.Repeat("2", 64) // the index claims a hash its file does not have
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/simple/demo/":
			accept = r.Header.Get("Accept")
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
			if err := json.NewEncoder(w).Encode(map[string]any{"meta": map[string]string{"api-version": "1.0"}, "name": "demo", "files": []map[string]any{
				{"filename": "demo-0.9-py3-none-any.whl", "url": "../../files/old.whl", "hashes": map[string]string{"sha256": strings.Repeat("1", 64)}},
				{"filename": "demo-1.0-py3-none-manylinux1_x86_64.whl", "url": "../../files/demo.whl", "hashes": map[string]string{"sha256": liar}},
				{"filename": filepath.Base(p), "url": "../../files/demo.whl", "hashes": map[string]string{"sha256": sum}},
			}}); err != nil {
				t.Errorf("serving the project page: %v", err)
			}
		case "/files/demo.whl":
			http.ServeFile(w, r, p)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	idx := &Index{URL: srv.URL + "/simple", Store: &Store{Dir: t.TempDir()}}
	got, gotSum, err := idx.Fetch(context.Background(), req)
	if err != nil || gotSum != sum || fileSum(t, got) != sum {
		t.Fatalf("Index.Fetch = %s, %s, %v", got, gotSum, err)
	}
	if accept != "application/vnd.pypi.simple.v1+json" {
		t.Errorf("Accept = %q", accept)
	}
	wrong := req
	wrong.Hashes = []string{strings.Repeat("0", 64)}
	if _, _, err := idx.Fetch(context.Background(), wrong); !errors.Is(err, ErrNotFound) {
		t.Errorf("Index.Fetch with a wrong hash = %v", err)
	}
	// A file whose bytes are not what the index claimed is not kept.
	lied := req
	lied.Hashes = []string{liar}
	if _, _, err := idx.Fetch(context.Background(), lied); !errors.Is(err, ErrNotPinned) {
		t.Errorf("Index.Fetch of a file that differs from its listed hash = %v, want ErrNotPinned", err)
	}
	if _, ok := idx.Store.Lookup(sum, "demo-1.0-py3-none-manylinux1_x86_64.whl"); ok {
		t.Error("the mislabelled download was kept")
	}
}

// closeChecked closes c, failing the test on an error.
func closeChecked(t testing.TB, c io.Closer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Errorf("closing: %v", err)
	}
}
