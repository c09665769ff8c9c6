package datasetintake

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/events"
)

// entry is one member of an archive a test writes.
type entry struct {
	name string
	body string
	mode fs.FileMode // zip: the entry's mode (symlink, device, ...); 0 for a file
	tar  byte        // tar: the type flag; 0 for a regular file
	link string      // tar: the link target
	size int64       // tar: the declared size when it must lie; 0 for len(body)
}

func makeZip(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func makeTarGz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.tar, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
		if e.tar == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: e.tar, PAXRecords: map[string]string{"comment": e.name}}
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if e.size != 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil && e.size == 0 {
			t.Fatal(err)
		}
	}
	// A lying size leaves the stream short; close what can be closed.
	_ = tw.Close()
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const specYAML = "name: cats\ntask: classification\nformat: imagefolder\n"

func TestArchiveKind(t *testing.T) {
	for key, want := range map[string][2]string{
		"up/cats.zip":      {kindZip, "cats"},
		"up/Cats v2.ZIP":   {kindZip, "Cats v2"},
		"cats.tar.gz":      {kindTarGz, "cats"},
		"a/b/cats.tgz":     {kindTarGz, "cats"},
		"up/cats.tar":      {"", ""},
		"up/cats.png":      {"", ""},
		"up/.zip":          {"", ""},
		"up/.hidden.tgz":   {"", ""},
		"up/cats.zip.part": {"", ""},
	} {
		kind, stem, ok := archiveKind(key)
		if !ok {
			kind, stem = "", ""
		}
		if got := [2]string{kind, stem}; got != want {
			t.Errorf("archiveKind(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestCleanName(t *testing.T) {
	for name, want := range map[string][2]string{
		"a/b.png":           {"a/b.png", ""},
		"./a/b.png":         {"a/b.png", ""},
		"a/":                {"a", ""},
		"./":                {"", ""},
		"../evil":           {"", "climbs out of the archive with '..'"},
		"a/../../evil":      {"", "climbs out of the archive with '..'"},
		"/etc/passwd":       {"", "an absolute path"},
		`C:\evil`:           {"", `a backslash in the name (archive paths use '/')`},
		"c:/evil":           {"", "a drive letter (an absolute Windows path)"},
		"a//b":              {"", "not a clean relative path (empty or '.' elements)"},
		"a/./b":             {"", "not a clean relative path (empty or '.' elements)"},
		"a\x00b":            {"", "a NUL character in the name"},
		"train/cat/ü 1.png": {"train/cat/ü 1.png", ""},
	} {
		p, why := cleanName(name)
		if got := [2]string{p, why}; got != want {
			t.Errorf("cleanName(%q) = %q, want %q", name, got, want)
		}
	}
}

func planPaths(pl *plan) []string {
	var out []string
	for _, m := range pl.files {
		out = append(out, m.path)
	}
	return out
}

func TestInspectGood(t *testing.T) {
	zeros := strings.Repeat("\x00", 64<<10) // compresses well, but under the ratio floor
	cases := []struct {
		desc string
		kind string
		data []byte
		want []string
	}{
		{"zip at the root", kindZip, makeZip(t,
			entry{name: "dataset.yaml", body: specYAML},
			entry{name: "train/", mode: fs.ModeDir | 0o755},
			entry{name: "train/cat/1.png", body: "png"},
			entry{name: "train/cat/zeros.bin", body: zeros},
			entry{name: "manifest.json", body: "{}"},
			entry{name: "__MACOSX/train/._1.png", body: "fork"},
		), []string{"train/cat/1.png", "train/cat/zeros.bin", "dataset.yaml"}},
		{"zip of one folder", kindZip, makeZip(t,
			entry{name: "cats/", mode: fs.ModeDir | 0o755},
			entry{name: "cats/train/cat/1.png", body: "png"},
			entry{name: "cats/dataset.yaml", body: specYAML},
			entry{name: "cats/val/cat/2.png", body: "png"},
		), []string{"train/cat/1.png", "val/cat/2.png", "dataset.yaml"}},
		{"tar.gz made with -C dir .", kindTarGz, makeTarGz(t,
			entry{name: "./", tar: tar.TypeDir},
			entry{name: "./dataset.yaml", body: specYAML},
			entry{name: "./train/", tar: tar.TypeDir},
			entry{name: "./train/cat/1.png", body: "png"},
			entry{name: "pax_global_header", tar: tar.TypeXGlobalHeader},
		), []string{"train/cat/1.png", "dataset.yaml"}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			pl, problems := inspect(c.kind, bytes.NewReader(c.data), int64(len(c.data)), DefaultLimits, "cats.x")
			if len(problems) > 0 {
				t.Fatalf("inspect() problems: %v", problems)
			}
			if diff := cmp.Diff(c.want, planPaths(pl)); diff != "" {
				t.Errorf("inspect() files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInspectRefuses(t *testing.T) {
	spec := entry{name: "dataset.yaml", body: specYAML}
	img := entry{name: "train/cat/1.png", body: "png"}
	bomb := strings.Repeat("\x00", 8<<20)
	small := Limits{MaxSize: 1 << 30, MaxBytes: 1 << 20, MaxEntries: 5, MaxRatio: 100}
	cases := []struct {
		desc   string
		kind   string
		data   []byte
		limits Limits
		want   []events.FieldError
	}{
		{"zip slip", kindZip, makeZip(t, spec, img, entry{name: "../../etc/cron.d/evil", body: "x"}), DefaultLimits,
			[]events.FieldError{{Field: "../../etc/cron.d/evil", Reason: "climbs out of the archive with '..'"}}},
		{"tar slip and an absolute path", kindTarGz, makeTarGz(t, spec, img, entry{name: "a/../../evil", body: "x"}, entry{name: "/etc/passwd", body: "x"}), DefaultLimits,
			[]events.FieldError{{Field: "a/../../evil", Reason: "climbs out of the archive with '..'"}, {Field: "/etc/passwd", Reason: "an absolute path"}}},
		{"zip symlink", kindZip, makeZip(t, spec, img, entry{name: "train/cat/link.png", body: "/etc/shadow", mode: fs.ModeSymlink | 0o777}), DefaultLimits,
			[]events.FieldError{{Field: "train/cat/link.png", Reason: `a symbolic link (to "/etc/shadow"): links are not unpacked`}}},
		{"zip device", kindZip, makeZip(t, spec, img, entry{name: "dev/null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}), DefaultLimits,
			[]events.FieldError{{Field: "dev/null", Reason: "not a regular file or folder (a device, FIFO, socket or sparse file)"}}},
		{"tar links and devices", kindTarGz, makeTarGz(t, spec, img,
			entry{name: "train/cat/s.png", tar: tar.TypeSymlink, link: "../../../etc/passwd"},
			entry{name: "train/cat/h.png", tar: tar.TypeLink, link: "/etc/passwd"},
			entry{name: "train/cat/c", tar: tar.TypeChar},
			entry{name: "train/cat/f", tar: tar.TypeFifo}), DefaultLimits,
			[]events.FieldError{
				{Field: "train/cat/s.png", Reason: `a symbolic link (to "../../../etc/passwd"): links are not unpacked`},
				{Field: "train/cat/h.png", Reason: `a hard link (to "/etc/passwd"): links are not unpacked`},
				{Field: "train/cat/c", Reason: "not a regular file or folder (a device, FIFO, socket or sparse file)"},
				{Field: "train/cat/f", Reason: "not a regular file or folder (a device, FIFO, socket or sparse file)"},
			}},
		{"zip bomb entry", kindZip, makeZip(t, spec, img, entry{name: "train/cat/zeros.png", body: bomb}), DefaultLimits,
			nil}, // the reason carries the compressed size: checked below
		{"too many entries", kindZip, makeZip(t, spec, img, img2("a"), img2("b"), img2("c"), img2("d")), small,
			[]events.FieldError{{Field: "cats.x", Reason: "more than 5 entries"}}},
		{"tar too many entries", kindTarGz, makeTarGz(t, spec, img, img2("a"), img2("b"), img2("c"), img2("d")), small,
			[]events.FieldError{{Field: "cats.x", Reason: "more than 5 entries"}}},
		{"too many bytes", kindTarGz, makeTarGz(t, spec, entry{name: "train/cat/big.png", body: strings.Repeat("x", 2<<20)}), small,
			[]events.FieldError{{Field: "cats.x", Reason: "unpacks to more than 1048576 bytes"}}},
		{"tar declaring more than it holds", kindTarGz, makeTarGz(t, spec, entry{name: "train/cat/big.png", body: "short", size: 1 << 40}), DefaultLimits,
			[]events.FieldError{{Field: "cats.x", Reason: "unpacks to more than 1073741824 bytes"}}},
		{"listed twice", kindZip, makeZip(t, spec, img, img), DefaultLimits,
			[]events.FieldError{{Field: "train/cat/1.png", Reason: "listed twice"}}},
		{"a file that is also a folder", kindZip, makeZip(t, spec, img, entry{name: "train/cat", body: "x"}), DefaultLimits,
			[]events.FieldError{{Field: "train/cat/1.png", Reason: "train/cat is a file of the archive as well as a folder"}}},
		{"no dataset.yaml", kindZip, makeZip(t, img), DefaultLimits,
			[]events.FieldError{{Field: "cats.x", Reason: "no dataset.yaml at the archive's root (nor in its one top folder): an archive holds one dataset, described by its dataset.yaml"}}},
		{"dataset.yaml only", kindTarGz, makeTarGz(t, spec), DefaultLimits,
			[]events.FieldError{{Field: "cats.x", Reason: "no data files"}}},
		{"not a zip", kindZip, []byte("PK? no"), DefaultLimits,
			[]events.FieldError{{Field: "cats.x", Reason: "not a zip archive: zip: not a valid zip file"}}},
		{"not gzip", kindTarGz, []byte("plain text"), DefaultLimits,
			[]events.FieldError{{Field: "cats.x", Reason: "not a gzip stream: gzip: invalid header"}}},
		{"nested archive", kindZip, makeZip(t, spec, img, entry{name: "more/inner.zip", body: "PK"}), DefaultLimits,
			[]events.FieldError{{Field: "more/inner.zip", Reason: "an archive inside the archive: nested archives are not unpacked"}}},
		{"backslashes", kindZip, makeZip(t, spec, img, entry{name: `train\cat\2.png`, body: "x"}), DefaultLimits,
			[]events.FieldError{{Field: `train\cat\2.png`, Reason: `a backslash in the name (archive paths use '/')`}}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			pl, problems := inspect(c.kind, bytes.NewReader(c.data), int64(len(c.data)), c.limits, "cats.x")
			if pl != nil {
				t.Errorf("inspect() = a plan of %v, want none", planPaths(pl))
			}
			if c.want == nil {
				if len(problems) != 1 || problems[0].Field != "train/cat/zeros.png" || !strings.Contains(problems[0].Reason, "more than 100 times (a zip bomb?)") {
					t.Errorf("inspect() = %v, want the bomb named", problems)
				}
				return
			}
			if diff := cmp.Diff(c.want, problems); diff != "" {
				t.Errorf("inspect() problems (-want +got):\n%s", diff)
			}
		})
	}
}

func img2(name string) entry { return entry{name: "train/cat/" + name + ".png", body: "png"} }

// TestInspectWholeArchiveRatio: many entries, each under the floor, that
// together expand past the ratio.
func TestInspectWholeArchiveRatio(t *testing.T) {
	entries := []entry{{name: "dataset.yaml", body: specYAML}}
	for i := range 40 {
		entries = append(entries, entry{name: fmt.Sprintf("train/cat/%d.png", i), body: strings.Repeat("\x00", 512<<10)})
	}
	data := makeTarGz(t, entries...)
	_, problems := inspect(kindTarGz, bytes.NewReader(data), int64(len(data)), DefaultLimits, "cats.tgz")
	if len(problems) != 1 || problems[0].Field != "cats.tgz" || !strings.Contains(problems[0].Reason, "(a zip bomb?)") {
		t.Errorf("inspect() = %v, want the archive named as a bomb", problems)
	}
}

// TestInspectManyProblems: a rejection lists at most maxArchiveProblems.
func TestInspectManyProblems(t *testing.T) {
	entries := []entry{{name: "dataset.yaml", body: specYAML}}
	for i := range 80 {
		entries = append(entries, entry{name: fmt.Sprintf("../%d", i), body: "x"})
	}
	data := makeZip(t, entries...)
	_, problems := inspect(kindZip, bytes.NewReader(data), int64(len(data)), DefaultLimits, "many.zip")
	if len(problems) != maxArchiveProblems+1 || problems[maxArchiveProblems].Reason != "30 more problems not listed" {
		t.Errorf("inspect() = %d problems, last %v; want %d and a count of the rest", len(problems), problems[len(problems)-1], maxArchiveProblems+1)
	}
}
