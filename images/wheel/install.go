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
	"regexp"
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
// is a member path that is absolute, has an empty, . or .. element, or
// names no file under its scheme. Errors wrap ErrBadWheel.
func Install(file string, o Options) (*Installed, error) {
	if o.Interpreter == "" {
		o.Interpreter = "/usr/bin/python3"
	}
	if o.Prefix == "" {
		o.Prefix = path.Dir(o.Scripts)
	}
	base := path.Base(file)
	name, version, err := parseFilename(base)
	if err != nil {
		return nil, err
	}
	zr, err := zip.OpenReader(file)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", base, err)
	}
	in := &installer{o: o, name: name, inst: &Installed{Name: name, Version: version, zr: zr}}
	if err := in.run(zr.File); err != nil {
		zr.Close()
		return nil, fmt.Errorf("installing %s: %w", base, err)
	}
	return in.inst, nil
}

var distNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._]*[A-Za-z0-9])?$`)

// parseFilename reads name-version[-build]-python-abi-platform.whl.
func parseFilename(base string) (name, version string, err error) {
	parts := strings.Split(strings.TrimSuffix(base, ".whl"), "-")
	if !strings.HasSuffix(base, ".whl") || (len(parts) != 5 && len(parts) != 6) {
		return "", "", fmt.Errorf("%w: %s is not a wheel file name (name-version[-build]-python-abi-platform.whl)", ErrBadWheel, base)
	}
	if !distNameRE.MatchString(parts[0]) {
		return "", "", fmt.Errorf("%w: %s: %q is not a distribution name", ErrBadWheel, base, parts[0])
	}
	return parts[0], parts[1], nil
}

// installer holds one Install's state; each step of run is a method.
type installer struct {
	o        Options
	name     string
	inst     *Installed
	members  map[string]*zip.File
	distInfo string
	rec      map[string]record
	// placed is every installed file with its RECORD line.
	placed []placed
}

type placed struct {
	dest string
	rec  record
}

func (in *installer) run(files []*zip.File) error {
	if err := in.indexMembers(files); err != nil {
		return err
	}
	if err := checkWheelFile(in.members[in.distInfo+"/WHEEL"]); err != nil {
		return err
	}
	rec, err := readRecord(in.members[in.distInfo+"/RECORD"])
	if err != nil {
		return err
	}
	in.rec = rec
	if err := in.placeMembers(); err != nil {
		return err
	}
	if err := in.checkRecordComplete(); err != nil {
		return err
	}
	if err := in.addLaunchers(); err != nil {
		return err
	}
	in.addInstaller()
	return in.addRecord()
}

// indexMembers maps the wheel's file members by name, refusing unsafe
// names and duplicates, and finds its one .dist-info directory.
func (in *installer) indexMembers(files []*zip.File) error {
	in.members = map[string]*zip.File{}
	for _, f := range files {
		n := f.Name
		if strings.HasSuffix(n, "/") {
			continue
		}
		if err := checkMemberName(n); err != nil {
			return err
		}
		if _, dup := in.members[n]; dup {
			return fmt.Errorf("%w: %q appears twice", ErrBadWheel, n)
		}
		in.members[n] = f
		if d, rest, ok := strings.Cut(n, "/"); ok && rest == "WHEEL" && strings.HasSuffix(d, ".dist-info") {
			if in.distInfo != "" {
				return fmt.Errorf("%w: two .dist-info directories: %s and %s", ErrBadWheel, in.distInfo, d)
			}
			in.distInfo = d
		}
	}
	if in.distInfo == "" {
		return fmt.Errorf("%w: no .dist-info/WHEEL", ErrBadWheel)
	}
	return nil
}

// checkMemberName refuses a member path that is absolute, uses
// backslashes, or has an empty, . or .. element: each would put a file
// somewhere other than below its root (x.data/scripts/. is the scripts
// directory itself).
func checkMemberName(n string) error {
	if strings.Contains(n, "\\") || path.IsAbs(n) {
		return fmt.Errorf("%w: %q escapes its root", ErrBadWheel, n)
	}
	for _, e := range strings.Split(n, "/") {
		switch e {
		case "..":
			return fmt.Errorf("%w: %q escapes its root", ErrBadWheel, n)
		case "", ".":
			return fmt.Errorf("%w: %q has an empty or . path element", ErrBadWheel, n)
		}
	}
	return nil
}

// placeMembers decides where each member goes and with which mode.
func (in *installer) placeMembers() error {
	names := make([]string, 0, len(in.members))
	for n := range in.members {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n == in.distInfo+"/RECORD" || n == in.distInfo+"/RECORD.jws" || n == in.distInfo+"/RECORD.p7s" {
			continue
		}
		if err := in.placeMember(n, in.members[n]); err != nil {
			return err
		}
	}
	return nil
}

func (in *installer) placeMember(n string, zf *zip.File) error {
	want, ok := in.rec[n]
	if !ok || want.hash == "" {
		return fmt.Errorf("%w: %s is not in RECORD with a hash", ErrBadWheel, n)
	}
	dest, script, err := in.destination(n)
	if err != nil {
		return err
	}
	mode := int64(0o644)
	if zf.Mode().Perm()&0o111 != 0 || script {
		mode = 0o755
	}
	if script {
		b, err := readAll(zf, want)
		if err != nil {
			return err
		}
		b = in.rewriteShebang(b)
		in.add(File{Path: dest, Mode: mode, Size: int64(len(b)), Data: b}, record{recordHash(b), int64(len(b))})
		return nil
	}
	if want.size != 0 && uint64(want.size) != zf.UncompressedSize64 {
		return fmt.Errorf("%w: %s is %d bytes; RECORD says %d", ErrBadWheel, n, zf.UncompressedSize64, want.size)
	}
	open := func() (io.ReadCloser, error) { return sizeChecking(zf) }
	if in.o.VerifyRecord {
		open = func() (io.ReadCloser, error) { return verifying(zf, want) }
	}
	in.add(File{Path: dest, Mode: mode, Size: int64(zf.UncompressedSize64), Open: open}, want)
	return nil
}

// destination maps a member to its path in the image: root files and the
// purelib and platlib schemes to site-packages, scripts to Scripts,
// headers to Prefix/include/<name>, data to Prefix.
func (in *installer) destination(n string) (dest string, script bool, err error) {
	dataDir := strings.TrimSuffix(in.distInfo, ".dist-info") + ".data/"
	rest, ok := strings.CutPrefix(n, dataDir)
	if !ok {
		return path.Join(in.o.SitePackages, n), false, nil
	}
	scheme, sub, _ := strings.Cut(rest, "/")
	if sub == "" {
		return "", false, fmt.Errorf("%w: %s names no file under scheme %q", ErrBadWheel, n, scheme)
	}
	switch scheme {
	case "purelib", "platlib":
		return path.Join(in.o.SitePackages, sub), false, nil
	case "scripts":
		return path.Join(in.o.Scripts, sub), true, nil
	case "headers":
		return path.Join(in.o.Prefix, "include", in.name, sub), false, nil
	case "data":
		return path.Join(in.o.Prefix, sub), false, nil
	}
	return "", false, fmt.Errorf("%w: %s: unknown .data scheme %q", ErrBadWheel, n, scheme)
}

func (in *installer) rewriteShebang(b []byte) []byte {
	if !bytes.HasPrefix(b, []byte("#!python")) {
		return b
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		nl = len(b)
	}
	return append([]byte("#!"+in.o.Interpreter), b[nl:]...)
}

func (in *installer) add(f File, r record) {
	in.inst.Files = append(in.inst.Files, f)
	in.placed = append(in.placed, placed{f.Path, r})
}

// checkRecordComplete refuses a RECORD that lists a file the wheel lacks.
func (in *installer) checkRecordComplete() error {
	for n := range in.rec {
		if _, ok := in.members[n]; !ok {
			return fmt.Errorf("%w: RECORD lists %s, which the wheel lacks", ErrBadWheel, n)
		}
	}
	return nil
}

// addLaunchers writes a script for each console_scripts and gui_scripts
// entry point.
func (in *installer) addLaunchers() error {
	ep, ok := in.members[in.distInfo+"/entry_points.txt"]
	if !ok {
		return nil
	}
	b, err := readAll(ep, in.rec[in.distInfo+"/entry_points.txt"])
	if err != nil {
		return err
	}
	eps, err := parseEntryPoints(b)
	if err != nil {
		return fmt.Errorf("%w: entry_points.txt: %w", ErrBadWheel, err)
	}
	for _, e := range eps {
		s := launcher(in.o.Interpreter, e.module, e.attr)
		in.add(File{Path: path.Join(in.o.Scripts, e.name), Mode: 0o755, Size: int64(len(s)), Data: s}, record{recordHash(s), int64(len(s))})
	}
	return nil
}

func (in *installer) addInstaller() {
	b := []byte(InstallerName + "\n")
	in.add(File{Path: path.Join(in.o.SitePackages, in.distInfo, "INSTALLER"), Mode: 0o644, Size: int64(len(b)), Data: b}, record{recordHash(b), int64(len(b))})
}

// addRecord writes RECORD again with the installed paths, relative to
// site-packages.
func (in *installer) addRecord() error {
	recPath := path.Join(in.o.SitePackages, in.distInfo, "RECORD")
	rows := make([][]string, 0, len(in.placed)+1)
	for _, p := range in.placed {
		rows = append(rows, []string{relTo(in.o.SitePackages, p.dest), p.rec.hash, strconv.FormatInt(p.rec.size, 10)})
	}
	rows = append(rows, []string{relTo(in.o.SitePackages, recPath), "", ""})
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	var buf bytes.Buffer
	if err := csv.NewWriter(&buf).WriteAll(rows); err != nil {
		return fmt.Errorf("writing RECORD: %w", err)
	}
	in.inst.Files = append(in.inst.Files, File{Path: recPath, Mode: 0o644, Size: int64(buf.Len()), Data: buf.Bytes()})
	return nil
}

func checkWheelFile(f *zip.File) error {
	if f == nil {
		return fmt.Errorf("%w: no WHEEL", ErrBadWheel)
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("reading WHEEL: %w", err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Wheel-Version:"); ok {
			major, _, _ := strings.Cut(strings.TrimSpace(v), ".")
			if major != "1" {
				return fmt.Errorf("%w: Wheel-Version %s is not supported (1.x is)", ErrBadWheel, strings.TrimSpace(v))
			}
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading WHEEL: %w", err)
	}
	return fmt.Errorf("%w: WHEEL has no Wheel-Version", ErrBadWheel)
}

func readRecord(f *zip.File) (map[string]record, error) {
	if f == nil {
		return nil, fmt.Errorf("%w: no RECORD", ErrBadWheel)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("reading RECORD: %w", err)
	}
	defer rc.Close()
	rows, err := csv.NewReader(rc).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%w: RECORD: %w", ErrBadWheel, err)
	}
	out := map[string]record{}
	for i, row := range rows {
		if len(row) != 3 {
			return nil, fmt.Errorf("%w: RECORD line %d: want path,hash,size", ErrBadWheel, i+1)
		}
		var size int64
		if row[2] != "" {
			if size, err = strconv.ParseInt(row[2], 10, 64); err != nil {
				return nil, fmt.Errorf("%w: RECORD line %d: size %q", ErrBadWheel, i+1, row[2])
			}
		}
		if row[1] != "" && !strings.HasPrefix(row[1], "sha256=") {
			return nil, fmt.Errorf("%w: RECORD line %d: hash %q is not sha256", ErrBadWheel, i+1, row[1])
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
		return nil, fmt.Errorf("reading %s: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name, err)
	}
	return b, nil
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
		return n, fmt.Errorf("%w: %s: %d bytes, the zip header says %d", ErrBadWheel, s.name, s.n, s.want)
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
			return n, fmt.Errorf("%w: %s: content does not match RECORD (%s, %d bytes; RECORD says %s, %d bytes)", ErrBadWheel, v.name, got, v.n, v.want.hash, v.want.size)
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
		if !ok || name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") || mod == "" || attr == "" {
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
