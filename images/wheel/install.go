package wheel

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
)

// InstallerName is written to each dist-info's INSTALLER file.
const InstallerName = "vp"

// Options say where a wheel goes in the image.
type Options struct {
	SitePackages string // purelib and platlib
	Scripts      string // console scripts and .data/scripts
	Prefix       string // .data/data goes to Prefix, .data/headers to Prefix/include/<name>
	Interpreter  string // the #! of scripts; default /usr/bin/python3
	// VerifyRecord checks every member against its sha256 in RECORD as it
	// is read (PEP 427's installer rule). Without it only the sizes are
	// checked: a wheel pinned by its own sha256 in a lock file has every
	// byte authenticated already, RECORD included, and the second hash is
	// a sha256 pass over the whole wheel (pip makes neither check of
	// RECORD's hashes). Scripts and entry points are always checked.
	VerifyRecord bool
}

// File is one installed file, absolute in the image.
type File struct {
	Path string
	Mode int64
	Size int64
	// Data is generated content; otherwise Open reads it from the wheel,
	// checking it against the wheel's RECORD as it is read.
	Data []byte
	Open func() (io.ReadCloser, error)
}

// Installed is a wheel laid out for an image. Close it when its files have
// been read.
type Installed struct {
	Name, Version string
	Files         []File
	zr            *zip.ReadCloser
}

// Close releases the wheel file.
func (i *Installed) Close() error { return i.zr.Close() }

type record struct {
	hash string // "sha256=<urlsafe base64>"
	size int64
}

// Install lays out the wheel at file following the binary distribution
// format: root files to site-packages (purelib and platlib alike),
// <name>-<version>.data/<scheme>/ mapped by scheme, #!python in scripts
// rewritten, console_scripts and gui_scripts launchers generated, INSTALLER
// written and RECORD rewritten with the installed paths. A file that is
// missing from RECORD, or whose content does not match it, is an error; so
// is a path that escapes its root.
func Install(file string, o Options) (*Installed, error) {
	if o.Interpreter == "" {
		o.Interpreter = "/usr/bin/python3"
	}
	if o.Prefix == "" {
		o.Prefix = path.Dir(o.Scripts)
	}
	base := path.Base(file)
	parts := strings.Split(strings.TrimSuffix(base, ".whl"), "-")
	if !strings.HasSuffix(base, ".whl") || (len(parts) != 5 && len(parts) != 6) {
		return nil, fmt.Errorf("%s: not a wheel file name (name-version[-build]-python-abi-platform.whl)", base)
	}
	name, version := parts[0], parts[1]
	zr, err := zip.OpenReader(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", base, err)
	}
	inst := &Installed{Name: name, Version: version, zr: zr}
	fail := func(format string, args ...any) (*Installed, error) {
		zr.Close()
		return nil, fmt.Errorf("%s: %s", base, fmt.Sprintf(format, args...))
	}
	distInfo := ""
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		n := f.Name
		if strings.HasSuffix(n, "/") {
			continue
		}
		if path.IsAbs(n) || strings.Contains("/"+n+"/", "/../") || strings.Contains(n, "\\") {
			return fail("%q escapes its root", n)
		}
		if _, dup := files[n]; dup {
			return fail("%q appears twice", n)
		}
		files[n] = f
		if d, rest, ok := strings.Cut(n, "/"); ok && rest == "WHEEL" && strings.HasSuffix(d, ".dist-info") {
			if distInfo != "" {
				return fail("two .dist-info directories: %s and %s", distInfo, d)
			}
			distInfo = d
		}
	}
	if distInfo == "" {
		return fail("no .dist-info/WHEEL")
	}
	if err := checkWheelFile(files[distInfo+"/WHEEL"]); err != nil {
		return fail("%v", err)
	}
	rec, err := readRecord(files[distInfo+"/RECORD"])
	if err != nil {
		return fail("%v", err)
	}
	dataDir := strings.TrimSuffix(distInfo, ".dist-info") + ".data/"
	type placed struct {
		dest string
		rec  record
	}
	var installed []placed
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := files[n]
		if n == distInfo+"/RECORD" || n == distInfo+"/RECORD.jws" || n == distInfo+"/RECORD.p7s" {
			continue
		}
		r, ok := rec[n]
		if !ok || r.hash == "" {
			return fail("%s is not in RECORD with a hash", n)
		}
		dest := path.Join(o.SitePackages, n)
		mode := int64(0o644)
		if f.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
		script := false
		if rest, ok := strings.CutPrefix(n, dataDir); ok {
			scheme, sub, _ := strings.Cut(rest, "/")
			switch scheme {
			case "purelib", "platlib":
				dest = path.Join(o.SitePackages, sub)
			case "scripts":
				dest = path.Join(o.Scripts, sub)
				mode = 0o755
				script = true
			case "headers":
				dest = path.Join(o.Prefix, "include", name, sub)
			case "data":
				dest = path.Join(o.Prefix, sub)
			default:
				return fail("%s: unknown .data scheme %q", n, scheme)
			}
		}
		zf := f
		want := r
		if script {
			b, err := readAll(zf, want)
			if err != nil {
				return fail("%v", err)
			}
			if bytes.HasPrefix(b, []byte("#!python")) {
				nl := bytes.IndexByte(b, '\n')
				if nl < 0 {
					nl = len(b)
				}
				b = append([]byte("#!"+o.Interpreter), b[nl:]...)
			}
			inst.Files = append(inst.Files, File{Path: dest, Mode: mode, Size: int64(len(b)), Data: b})
			installed = append(installed, placed{dest, record{recordHash(b), int64(len(b))}})
			continue
		}
		if want.size != 0 && uint64(want.size) != zf.UncompressedSize64 {
			return fail("%s is %d bytes; RECORD says %d", n, zf.UncompressedSize64, want.size)
		}
		open := func() (io.ReadCloser, error) { return sizeChecking(zf) }
		if o.VerifyRecord {
			open = func() (io.ReadCloser, error) { return verifying(zf, want) }
		}
		inst.Files = append(inst.Files, File{Path: dest, Mode: mode, Size: int64(zf.UncompressedSize64), Open: open})
		installed = append(installed, placed{dest, want})
	}
	for n := range rec {
		if _, ok := files[n]; !ok {
			return fail("RECORD lists %s, which the wheel lacks", n)
		}
	}
	// Launchers for entry points.
	if ep, ok := files[distInfo+"/entry_points.txt"]; ok {
		b, err := readAll(ep, rec[distInfo+"/entry_points.txt"])
		if err != nil {
			return fail("%v", err)
		}
		eps, err := parseEntryPoints(b)
		if err != nil {
			return fail("entry_points.txt: %v", err)
		}
		for _, e := range eps {
			s := launcher(o.Interpreter, e.module, e.attr)
			dest := path.Join(o.Scripts, e.name)
			inst.Files = append(inst.Files, File{Path: dest, Mode: 0o755, Size: int64(len(s)), Data: s})
			installed = append(installed, placed{dest, record{recordHash(s), int64(len(s))}})
		}
	}
	installer := []byte(InstallerName + "\n")
	instPath := path.Join(o.SitePackages, distInfo, "INSTALLER")
	inst.Files = append(inst.Files, File{Path: instPath, Mode: 0o644, Size: int64(len(installer)), Data: installer})
	installed = append(installed, placed{instPath, record{recordHash(installer), int64(len(installer))}})
	// RECORD, rewritten with the installed paths relative to site-packages.
	recPath := path.Join(o.SitePackages, distInfo, "RECORD")
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	rows := make([][]string, 0, len(installed)+1)
	for _, p := range installed {
		rows = append(rows, []string{relTo(o.SitePackages, p.dest), p.rec.hash, strconv.FormatInt(p.rec.size, 10)})
	}
	rows = append(rows, []string{relTo(o.SitePackages, recPath), "", ""})
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	_ = w.WriteAll(rows)
	inst.Files = append(inst.Files, File{Path: recPath, Mode: 0o644, Size: int64(buf.Len()), Data: buf.Bytes()})
	return inst, nil
}

func checkWheelFile(f *zip.File) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Wheel-Version:"); ok {
			major, _, _ := strings.Cut(strings.TrimSpace(v), ".")
			if major != "1" {
				return fmt.Errorf("Wheel-Version %s is not supported (1.x is)", strings.TrimSpace(v))
			}
			return nil
		}
	}
	return fmt.Errorf("WHEEL has no Wheel-Version")
}

func readRecord(f *zip.File) (map[string]record, error) {
	if f == nil {
		return nil, fmt.Errorf("no RECORD")
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	rows, err := csv.NewReader(rc).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("RECORD: %w", err)
	}
	out := map[string]record{}
	for i, row := range rows {
		if len(row) != 3 {
			return nil, fmt.Errorf("RECORD line %d: want path,hash,size", i+1)
		}
		var size int64
		if row[2] != "" {
			if size, err = strconv.ParseInt(row[2], 10, 64); err != nil {
				return nil, fmt.Errorf("RECORD line %d: size %q", i+1, row[2])
			}
		}
		if row[1] != "" && !strings.HasPrefix(row[1], "sha256=") {
			return nil, fmt.Errorf("RECORD line %d: hash %q is not sha256", i+1, row[1])
		}
		out[row[0]] = record{hash: row[1], size: size}
	}
	return out, nil
}

func recordHash(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256=" + base64.RawURLEncoding.EncodeToString(s[:])
}

func relTo(base, p string) string {
	b := strings.Split(strings.Trim(base, "/"), "/")
	q := strings.Split(strings.Trim(p, "/"), "/")
	i := 0
	for i < len(b) && i < len(q) && b[i] == q[i] {
		i++
	}
	return strings.Repeat("../", len(b)-i) + strings.Join(q[i:], "/")
}

func readAll(f *zip.File, want record) ([]byte, error) {
	rc, err := verifying(f, want)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// verifying opens a wheel member that fails at EOF unless its sha256 and
// size are those RECORD gives.
func verifying(f *zip.File, want record) (io.ReadCloser, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	return &verifier{rc: rc, h: sha256.New(), want: want, name: f.Name}, nil
}

// sizeChecking opens a wheel member that fails at EOF unless it has the
// size its zip header gives. A stored member is read raw, without the
// zip reader's CRC-32: the lock's sha256 covers those bytes already.
func sizeChecking(f *zip.File) (io.ReadCloser, error) {
	var rc io.ReadCloser
	if f.Method == zip.Store {
		r, err := f.OpenRaw()
		if err != nil {
			return nil, err
		}
		rc = io.NopCloser(r)
	} else {
		var err error
		if rc, err = f.Open(); err != nil {
			return nil, err
		}
	}
	return &sizeChecker{rc: rc, want: int64(f.UncompressedSize64), name: f.Name}, nil
}

type sizeChecker struct {
	rc      io.ReadCloser
	n, want int64
	name    string
}

func (s *sizeChecker) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	s.n += int64(n)
	if err == io.EOF && s.n != s.want {
		return n, fmt.Errorf("%s: %d bytes, the zip header says %d", s.name, s.n, s.want)
	}
	return n, err
}

func (s *sizeChecker) Close() error { return s.rc.Close() }

type verifier struct {
	rc   io.ReadCloser
	h    hash.Hash
	n    int64
	want record
	name string
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		got := "sha256=" + base64.RawURLEncoding.EncodeToString(v.h.Sum(nil))
		if got != v.want.hash || (v.want.size != 0 && v.n != v.want.size) {
			return n, fmt.Errorf("%s: content does not match RECORD (%s, %d bytes; RECORD says %s, %d bytes)", v.name, got, v.n, v.want.hash, v.want.size)
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.rc.Close() }

type entryPoint struct{ name, module, attr string }

func parseEntryPoints(b []byte) ([]entryPoint, error) {
	var out []entryPoint
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		if section != "console_scripts" && section != "gui_scripts" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want name = module:attr", i+1)
		}
		v, _, _ = strings.Cut(strings.TrimSpace(v), "[") // extras
		mod, attr, ok := strings.Cut(strings.TrimSpace(v), ":")
		name := strings.TrimSpace(k)
		if !ok || name == "" || strings.ContainsAny(name, "/\\") || mod == "" || attr == "" {
			return nil, fmt.Errorf("line %d: want name = module:attr", i+1)
		}
		out = append(out, entryPoint{name, strings.TrimSpace(mod), strings.TrimSpace(attr)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func launcher(interp, module, attr string) []byte {
	root, _, _ := strings.Cut(attr, ".")
	return []byte(fmt.Sprintf(`#!%s
# -*- coding: utf-8 -*-
import re
import sys
from %s import %s
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(%s())
`, interp, module, root, attr))
}
