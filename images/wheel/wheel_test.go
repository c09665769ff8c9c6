package wheel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var opts = Options{SitePackages: "/opt/vp/site-packages", Scripts: "/opt/vp/bin", Prefix: "/opt/vp", Interpreter: "/usr/bin/python3"}

func readFile(t *testing.T, f File) string {
	t.Helper()
	if f.Open == nil {
		return string(f.Data)
	}
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", f.Path, err)
	}
	return string(b)
}

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Make(dir, "demo_pkg", "1.2.0", map[string][]byte{
		"demo_pkg/__init__.py":                       []byte("VERSION = '1.2.0'\n"),
		"demo_pkg-1.2.0.data/scripts/demo-tool":      []byte("#!python\nimport demo_pkg\n"),
		"demo_pkg-1.2.0.data/data/share/demo/a.txt":  []byte("data"),
		"demo_pkg-1.2.0.data/headers/demo.h":         []byte("int x;"),
		"demo_pkg-1.2.0.data/platlib/demo_native.py": []byte("native = True\n"),
		"demo_pkg-1.2.0.dist-info/entry_points.txt":  []byte("[console_scripts]\ndemo = demo_pkg.cli:main [extra]\n[other]\nx = y:z\n"),
		"demo_pkg-1.2.0.dist-info/METADATA":          []byte("Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.2.0\n"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := Install(p, opts)
	if err != nil {
		t.Fatalf("Install() = %v", err)
	}
	defer inst.Close()
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
	}
	for i, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			d := filepath.Join(dir, fmt.Sprint(i))
			os.MkdirAll(d, 0o755)
			p, _, err := Make(d, "w", "1.0", c.files, c.tamper)
			if err != nil {
				t.Fatal(err)
			}
			o := opts
			o.VerifyRecord = c.verify
			inst, err := Install(p, o)
			if !c.onRead {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Install() = %v, want an error containing %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close()
			for _, f := range inst.Files {
				if f.Open == nil {
					continue
				}
				rc, _ := f.Open()
				_, err := io.ReadAll(rc)
				rc.Close()
				if strings.HasSuffix(f.Path, "a.py") {
					if err == nil || !strings.Contains(err.Error(), c.want) {
						t.Errorf("reading tampered %s: %v, want %q", f.Path, err, c.want)
					}
				}
			}
		})
	}
}

func TestParseLock(t *testing.T) {
	dir := t.TempDir()
	h := strings.Repeat("a", 64)
	good := filepath.Join(dir, "good.lock")
	os.WriteFile(good, []byte("# pinned\ntorch==2.1.0 \\\n    --hash=sha256:"+h+" \\\n    --hash=sha256:"+strings.Repeat("b", 64)+"\n\nPillow[extra]==10.0.1 --hash=sha256:"+h+"  # inline comment\n"), 0o644)
	reqs, err := ParseLock(good)
	if err != nil {
		t.Fatalf("ParseLock() = %v", err)
	}
	if len(reqs) != 2 || reqs[0].Name != "torch" || reqs[0].Version != "2.1.0" || len(reqs[0].Hashes) != 2 || reqs[0].Line != 2 || reqs[1].Name != "Pillow" || reqs[1].Line != 6 {
		t.Errorf("ParseLock() = %+v", reqs)
	}
	for _, c := range []struct{ body, want string }{
		{"numpy==1.0\n", "bad.lock:1: numpy has no --hash"},
		{"numpy>=1.0 --hash=sha256:" + h + "\n", "bad.lock:1: \"numpy>=1.0\" is not name==version"},
		{"\n\nnumpy==1 --hash=md5:abc\n", "bad.lock:3:"},
		{"a==1 --hash=sha256:" + h + "\nA==2 --hash=sha256:" + h + "\n", "bad.lock:2: A is also pinned at line 1"},
	} {
		bad := filepath.Join(dir, "bad.lock")
		os.WriteFile(bad, []byte(c.body), 0o644)
		if _, err := ParseLock(bad); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseLock(%q) = %v, want %q", c.body, err, c.want)
		}
	}
}

func sha(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	return hexSHA(b), nil
}

func TestWheelhouseAndIndex(t *testing.T) {
	house := t.TempDir()
	p, sum, err := Make(house, "demo", "1.0", map[string][]byte{"demo.py": []byte("x")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := Requirement{Name: "Demo", Version: "1.0", Hashes: []string{sum}}
	wh := &Wheelhouse{Dir: house, Hash: sha}
	if got, gotSum, err := wh.Fetch(context.Background(), req); err != nil || got != p || gotSum != sum {
		t.Errorf("Wheelhouse.Fetch = %s, %s, %v", got, gotSum, err)
	}
	wrong := req
	wrong.Hashes = []string{strings.Repeat("0", 64)}
	if _, _, err := wh.Fetch(context.Background(), wrong); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), sum) {
		t.Errorf("Wheelhouse.Fetch with a wrong hash = %v, want ErrNotFound naming the hash found", err)
	}
	// A PEP 691 index serving the same wheel.
	var accept string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/simple/demo/":
			accept = r.Header.Get("Accept")
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
			json.NewEncoder(w).Encode(map[string]any{"meta": map[string]string{"api-version": "1.0"}, "name": "demo", "files": []map[string]any{
				{"filename": "demo-0.9-py3-none-any.whl", "url": "../../files/old.whl", "hashes": map[string]string{"sha256": strings.Repeat("1", 64)}},
				{"filename": filepath.Base(p), "url": "../../files/demo.whl", "hashes": map[string]string{"sha256": sum}},
			}})
		case "/files/demo.whl":
			http.ServeFile(w, r, p)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	idx := &Index{URL: srv.URL + "/simple", Dir: t.TempDir()}
	got, gotSum, err := idx.Fetch(context.Background(), req)
	if err != nil || gotSum != sum {
		t.Fatalf("Index.Fetch = %s, %s, %v", got, gotSum, err)
	}
	if accept != "application/vnd.pypi.simple.v1+json" {
		t.Errorf("Accept = %q", accept)
	}
	if b1, _ := os.ReadFile(got); hexSHA(b1) != sum {
		t.Error("downloaded wheel differs")
	}
	if _, _, err := idx.Fetch(context.Background(), wrong); !errors.Is(err, ErrNotFound) {
		t.Errorf("Index.Fetch with a wrong hash = %v", err)
	}
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
