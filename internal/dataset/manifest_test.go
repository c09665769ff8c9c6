package dataset

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

var (
	hexA = strings.Repeat("a", 64)
	hexB = strings.Repeat("b", 64)
	hexC = strings.Repeat("c", 64)
)

// manifestWant pins the format byte for byte: the agent's manifest.json
// layout (two-space indent, final newline, fields in this order), files
// sorted by path as strings ("train/cat.txt" before "train/cat/0.png",
// '.' < '/'), whatever order a walk gave.
const manifestWant = `{
  "version": 1,
  "task": "classification",
  "format": "imagefolder",
  "files": [
    {
      "path": "train/cat.txt",
      "size": 0,
      "sha256": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
    },
    {
      "path": "train/cat/0.png",
      "size": 10,
      "sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    },
    {
      "path": "val/dog/0.png",
      "size": 20,
      "sha256": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
    }
  ]
}
`

func TestManifestCanonical(t *testing.T) {
	files := []File{
		{Path: "val/dog/0.png", Size: 20, SHA256: hexB},
		{Path: "train/cat/0.png", Size: 10, SHA256: hexA},
		{Path: "train/cat.txt", Size: 0, SHA256: hexC},
	}
	reversed := []File{files[2], files[1], files[0]}
	a, err := (&Manifest{Task: "classification", Format: "imagefolder", Files: files}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&Manifest{Version: 1, Task: "classification", Format: "imagefolder", Files: reversed}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(manifestWant, string(a)); diff != "" {
		t.Errorf("Marshal() (-want +got):\n%s", diff)
	}
	if string(a) != string(b) {
		t.Errorf("Marshal() of the same files in another order:\n%s\nwant\n%s", b, a)
	}
	if Digest(a) != Digest(b) {
		t.Errorf("Digest() = %s and %s for the same content", Digest(a), Digest(b))
	}
	if files[0].Path != "val/dog/0.png" {
		t.Errorf("Marshal() reordered the caller's files: %v", files)
	}
	if got, want := Digest([]byte("")), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; got != want {
		t.Errorf(`Digest("") = %s, want %s`, got, want)
	}

	m, err := ParseManifest(a)
	if err != nil {
		t.Fatalf("ParseManifest(Marshal()) = %v", err)
	}
	again, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(a) {
		t.Errorf("Marshal(ParseManifest(b)) != b:\n%s", again)
	}
	if got := m.Bytes(); got != 30 {
		t.Errorf("Bytes() = %d, want 30", got)
	}

	empty, err := (&Manifest{}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"version\": 1,\n  \"files\": []\n}\n"; string(empty) != want {
		t.Errorf("Marshal() of no files = %q, want %q", empty, want)
	}
}

func TestParseManifestErrors(t *testing.T) {
	file := func(p string, size int64, sum string) string {
		return `{"path":"` + p + `","size":` + strconv.FormatInt(size, 10) + `,"sha256":"` + sum + `"}`
	}
	doc := func(files ...string) string {
		return `{"version":1,"files":[` + strings.Join(files, ",") + `]}`
	}
	for _, tc := range []struct {
		desc string
		in   string
		want string
	}{
		{"absolute path", doc(file("/etc/passwd", 1, hexA)), `checking manifest: invalid manifest: files[0]: path "/etc/passwd" is not a clean relative path`},
		{"parent", doc(file("../x", 1, hexA)), `checking manifest: invalid manifest: files[0]: path "../x" is not a clean relative path`},
		{"unclean", doc(file("a/../b", 1, hexA), file("./c", 1, hexA), file("d//e", 1, hexA), file("f/", 1, hexA)), `checking manifest: invalid manifest: files[0]: path "a/../b" is not a clean relative path; files[1]: path "./c" is not a clean relative path; files[2]: path "d//e" is not a clean relative path; files[3]: path "f/" is not a clean relative path`},
		{"root and empty", doc(file(".", 1, hexA), file("", 1, hexA)), `checking manifest: invalid manifest: files[0]: path "." is not a clean relative path; files[1]: path "" is not a clean relative path`},
		{"twice", doc(file("a", 1, hexA), file("a", 1, hexA)), `checking manifest: invalid manifest: files[1]: "a" is listed twice`},
		{"itself", doc(file("manifest.json", 1, hexA)), `checking manifest: invalid manifest: files[0]: the manifest cannot list itself`},
		{"negative size, bad sums", doc(file("a", -1, "abc"), file("b", 1, strings.ToUpper(hexA))), `checking manifest: invalid manifest: files[0]: negative size -1; files[0]: sha256 "abc" is not 64 lower-case hex digits; files[1]: sha256 "` + strings.ToUpper(hexA) + `" is not 64 lower-case hex digits`},
		{"version", `{"version":2,"files":[]}`, `checking manifest: invalid manifest: version 2 is not 1`},
		{"unknown field", `{"version":1,"files":[],"digest":"x"}`, `decoding manifest: invalid manifest: json: unknown field "digest"`},
		{"trailing data", `{"version":1,"files":[]} {}`, `decoding manifest: invalid manifest: data after the manifest object`},
		{"not JSON", `version: 1`, `decoding manifest: invalid manifest: invalid character 'v' looking for beginning of value`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m, err := ParseManifest([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseManifest() = %+v, want an error", m)
			}
			if !errors.Is(err, ErrInvalidManifest) {
				t.Errorf("ParseManifest() = %v, want ErrInvalidManifest", err)
			}
			if err.Error() != tc.want {
				t.Errorf("ParseManifest() = %v, want %s", err, tc.want)
			}
		})
	}
	if _, err := (&Manifest{Files: []File{{Path: "/x", SHA256: hexA}}}).Marshal(); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("Marshal() of a bad path = %v, want ErrInvalidManifest", err)
	}
}

func TestBuildManifest(t *testing.T) {
	fsys := fstest.MapFS{
		"dataset.yaml":        {Data: []byte("name: x\n")},
		"manifest.json":       {Data: []byte("{}")},
		"train/cat/a.png":     {Data: []byte("abc")},
		"train/cat.txt":       {Data: []byte("")},
		"sub/dataset.yaml":    {Data: []byte("data")},
		"sub/manifest.json":   {Data: []byte("data")},
		"train/dog/b.PNG":     {Data: []byte("hello\n")},
		"val/.hidden/x.bytes": {Data: []byte{0, 1, 2}},
	}
	m, err := BuildManifest(context.Background(), fsys, "classification", "imagefolder")
	if err != nil {
		t.Fatal(err)
	}
	want := &Manifest{Version: 1, Task: "classification", Format: "imagefolder", Files: []File{
		{Path: "sub/dataset.yaml", Size: 4, SHA256: "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"},
		{Path: "sub/manifest.json", Size: 4, SHA256: "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"},
		{Path: "train/cat.txt", Size: 0, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{Path: "train/cat/a.png", Size: 3, SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{Path: "train/dog/b.PNG", Size: 6, SHA256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"},
		{Path: "val/.hidden/x.bytes", Size: 3, SHA256: "ae4b3280e56e2faf83f414a6e3dabe9d5fbe18976544c05fed121accb85b53fc"},
	}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("BuildManifest() (-want +got):\n%s", diff)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := BuildManifest(ctx, fsys, "classification", "imagefolder"); !errors.Is(err, context.Canceled) {
		t.Errorf("BuildManifest(cancelled) = %v, want context.Canceled", err)
	}
}
