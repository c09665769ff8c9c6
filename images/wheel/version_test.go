package wheel

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNormalizeVersion(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"2.15.0", "2.15"},
		{"1.0", "1"},
		{"0.1.1-2209072238", "0.1.1.post2209072238"}, // implicit post release (thop's METADATA)
		{"0.1.1.post2209072238", "0.1.1.post2209072238"},
		{"1.0.post", "1.post0"},
		{"1.0-r4", "1.post4"},
		{"1.0RC1", "1rc1"},
		{"1.0-preview.2", "1rc2"},
		{"1.0alpha", "1a0"},
		{"v1.02.dev3", "1.2.dev3"},
		{"0!1.0", "1"},
		{"2!1.0", "2!1"},
		{"13.3.5.0.6", "13.3.5.0.6"},
		{"2026.10.19.post1", "2026.10.19.post1"},
		{"1.0+Local_Ver-1", "1+local.ver.1"},
		{"not-a-version!", "not-a-version!"},
	} {
		if got := NormalizeVersion(c.in); got != c.want {
			t.Errorf("NormalizeVersion(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestIsWheelOf(t *testing.T) {
	thop := Requirement{Name: "thop", Version: "0.1.1-2209072238"}
	for _, c := range []struct {
		file string
		r    Requirement
		want bool
	}{
		{"thop-0.1.1.post2209072238-py3-none-any.whl", thop, true},
		{"thop-0.1.1.post2207130030-py3-none-any.whl", thop, false},
		{"thop-0.1.1_2209072238-py3-none-any.whl", thop, true},
		{"typing_extensions-4.16.0-py3-none-any.whl", Requirement{Name: "typing-extensions", Version: "4.16.0"}, true},
		{"zope.interface-5.0-cp311-cp311-manylinux_2_17_x86_64.whl", Requirement{Name: "zope-interface", Version: "5.0.0"}, true},
		{"Jinja2-3.1.6-py3-none-any.whl", Requirement{Name: "jinja2", Version: "3.1.6"}, true},
		{"torch-2.15.0-1-cp311-cp311-manylinux_2_28_x86_64.whl", Requirement{Name: "torch", Version: "2.15.0"}, true},
		{"torchvision-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl", Requirement{Name: "torch", Version: "2.15.0"}, false},
		{"torch-2.15.0.tar.gz", Requirement{Name: "torch", Version: "2.15.0"}, false},
		{"torch-2.15.0-cp311.whl", Requirement{Name: "torch", Version: "2.15.0"}, false},
	} {
		if got := IsWheelOf(c.file, c.r); got != c.want {
			t.Errorf("IsWheelOf(%s, %s==%s) = %v, want %v", c.file, c.r.Name, c.r.Version, got, c.want)
		}
	}
}

// TestFetchOtherVersionSpelling: PyPI's thop 0.1.1.post2209072238 gives its
// version as 0.1.1-2209072238 in its METADATA, so pip's report and the lock
// say thop==0.1.1-2209072238 while its wheel's file name says
// 0.1.1.post2209072238. Both fetchers find that wheel.
func TestFetchOtherVersionSpelling(t *testing.T) {
	ctx := context.Background()
	house := t.TempDir()
	p, sum := makeWheel(t, house, "thop", "0.1.1.post2209072238", map[string][]byte{"thop/__init__.py": []byte("")}, nil)
	req := Requirement{Name: "thop", Version: "0.1.1-2209072238", Hashes: []string{sum}}

	wh := &Wheelhouse{Dir: house, Store: &Store{Dir: t.TempDir()}}
	if got, gotSum, err := wh.Fetch(ctx, req); err != nil || gotSum != sum || filepath.Base(got) != filepath.Base(p) {
		t.Errorf("Wheelhouse.Fetch(thop==0.1.1-2209072238) = %s, %s, %v; want %s", got, gotSum, err, filepath.Base(p))
	}

	idx := &Index{URL: serveWheel(t, "thop", p, sum) + "/simple", Store: &Store{Dir: t.TempDir()}}
	if got, gotSum, err := idx.Fetch(ctx, req); err != nil || gotSum != sum || fileSum(t, got) != sum {
		t.Errorf("Index.Fetch(thop==0.1.1-2209072238) = %s, %s, %v; want the wheel of sha256 %s", got, gotSum, err, sum)
	}
}

// serveWheel serves one wheel file of a project as a PEP 691 index and
// returns the server's URL.
func serveWheel(t *testing.T, project, p, sum string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/simple/" + project + "/":
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
			if err := json.NewEncoder(w).Encode(map[string]any{"meta": map[string]string{"api-version": "1.0"}, "name": project, "files": []map[string]any{
				{"filename": filepath.Base(p), "url": "../../files/" + filepath.Base(p), "hashes": map[string]string{"sha256": sum}},
			}}); err != nil {
				t.Errorf("serving the project page: %v", err)
			}
		case "/files/" + filepath.Base(p):
			http.ServeFile(w, r, p)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestIndexReportsDownloads: Downloaded hears of a wheel downloaded, with
// its file name and bytes, and not of one the store already holds.
func TestIndexReportsDownloads(t *testing.T) {
	ctx := context.Background()
	p, sum := makeWheel(t, t.TempDir(), "demo", "1.0", map[string][]byte{"demo.py": []byte("x")}, nil)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	var heard []string
	idx := &Index{URL: serveWheel(t, "demo", p, sum) + "/simple", Store: &Store{Dir: t.TempDir()},
		Downloaded: func(filename string, size int64) { heard = append(heard, fmt.Sprintf("%s %d", filename, size)) }}
	req := Requirement{Name: "demo", Version: "1.0", Hashes: []string{sum}}
	for i := 0; i < 2; i++ {
		if _, _, err := idx.Fetch(ctx, req); err != nil {
			t.Fatalf("Index.Fetch #%d = %v", i+1, err)
		}
	}
	want := []string{fmt.Sprintf("%s %d", filepath.Base(p), fi.Size())}
	if diff := cmp.Diff(want, heard); diff != "" {
		t.Errorf("downloads heard over two fetches (-want +got):\n%s", diff)
	}
}
