package imagespec

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/vision-platform/vp/internal/strictyaml"
)

// Spec is one framework image.
type Spec struct {
	// Name is the image's name, also the repository under the registry.
	Name string `yaml:"name"`
	// Description goes into org.opencontainers.image.description.
	Description string `yaml:"description,omitempty"`
	Base        Base   `yaml:"base"`
	// Platforms to build, "linux/amd64" by default.
	Platforms  []string          `yaml:"platforms,omitempty"`
	Layers     []Layer           `yaml:"layers"`
	Env        map[string]string `yaml:"env,omitempty"`
	Entrypoint []string          `yaml:"entrypoint,omitempty"`
	Cmd        []string          `yaml:"cmd,omitempty"`
	WorkingDir string            `yaml:"workingDir,omitempty"`
	User       string            `yaml:"user,omitempty"`
	Labels     map[string]string `yaml:"labels,omitempty"`
	// Framework is the training framework the image serves.
	Framework string `yaml:"framework,omitempty"`
	// Families are the model families it serves (resnet, yolov8, ...).
	Families []string `yaml:"families,omitempty"`
	// Forbid lists distribution names no wheel layer may install (the
	// isolated images: paddle forbids torch).
	Forbid []string `yaml:"forbid,omitempty"`
	// Overrides lists paths of the base image that this spec's layers may
	// replace: a path, or a directory and everything below it. A path
	// written by two layers is otherwise refused, whether both are the
	// spec's own or one is the base image's (directories excepted).
	Overrides []string `yaml:"overrides,omitempty"`

	// File is where the spec was read from; relative paths are resolved
	// against its directory.
	File string `yaml:"-"`
}

// Base is what the image starts from: exactly one of the four.
type Base struct {
	// Scratch starts from nothing.
	Scratch bool `yaml:"scratch,omitempty"`
	// Image is a reference pulled from a registry.
	Image string `yaml:"image,omitempty"`
	// Spec is another spec's name, built first.
	Spec string `yaml:"spec,omitempty"`
	// Layout is an OCI image layout directory (its only image, or Tag).
	Layout string `yaml:"layout,omitempty"`
	Tag    string `yaml:"tag,omitempty"`
	// Rootfs is a root filesystem tarball (e.g. from debootstrap), used as
	// the bottom layer as it is.
	Rootfs string `yaml:"rootfs,omitempty"`
}

// Layer is one layer; exactly one source is set.
type Layer struct {
	Name   string       `yaml:"name"`
	Dir    *DirSource   `yaml:"dir,omitempty"`
	File   *FileSource  `yaml:"file,omitempty"`
	Go     *GoSource    `yaml:"go,omitempty"`
	Wheels *WheelSource `yaml:"wheels,omitempty"`
}

// DirSource copies a directory tree.
type DirSource struct {
	Src     string   `yaml:"src"`
	Dest    string   `yaml:"dest"`
	Include []string `yaml:"include,omitempty"`
	Exclude []string `yaml:"exclude,omitempty"`
}

// FileSource copies one file.
type FileSource struct {
	Src  string `yaml:"src"`
	Dest string `yaml:"dest"`
	Mode string `yaml:"mode,omitempty"` // octal, default from the file
}

// GoSource builds a Go main package for each platform, CGO_ENABLED=0 and
// -trimpath, as ko does.
type GoSource struct {
	Package string `yaml:"package"`
	Dest    string `yaml:"dest"`
	// Dir is the module directory to build in (default: the directory
	// holding the spec, walked up to its go.mod).
	Dir     string   `yaml:"dir,omitempty"`
	LDFlags []string `yaml:"ldflags,omitempty"`
}

// WheelSource installs the wheels a lock file names.
type WheelSource struct {
	// Lock is a pip-style requirements file pinning name==version with
	// --hash=sha256:... for every wheel.
	Lock string `yaml:"lock"`
	// Requirements is the file the lock is resolved from (vp images
	// lock): what the image asks for, where Lock is what it gets.
	Requirements string `yaml:"requirements,omitempty"`
	// Wheelhouse is a directory of wheel files.
	Wheelhouse string `yaml:"wheelhouse,omitempty"`
	// Index is a PEP 691 simple index URL.
	Index string `yaml:"index,omitempty"`
	// SitePackages is where the wheels go in the image.
	SitePackages string `yaml:"sitePackages"`
	// Scripts is where console scripts and .data/scripts go.
	Scripts string `yaml:"scripts"`
	// Prefix is the install prefix for .data/data and .data/headers.
	Prefix string `yaml:"prefix,omitempty"`
	// Interpreter is the #! line of scripts ("/usr/bin/python3" by default).
	Interpreter string `yaml:"interpreter,omitempty"`
	// OwnLayerOver gives a wheel bigger than this (bytes, or with Ki/Mi/Gi)
	// a layer of its own, so the same wheel is the same layer in every
	// image. Default 32Mi.
	OwnLayerOver string `yaml:"ownLayerOver,omitempty"`
	// VerifyRecord checks every installed file against the sha256 the
	// wheel's RECORD gives it. Off by default: the lock's sha256 already
	// pins every byte of the wheel, and the check is one more sha256 pass
	// over it. Sizes are always checked.
	VerifyRecord bool `yaml:"verifyRecord,omitempty"`
}

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/v[0-9]+)?$`)
	sizeRE     = regexp.MustCompile(`^([0-9]+)(Ki|Mi|Gi)?$`)
)

// Load reads one spec file.
func Load(file string) (*Spec, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	return Parse(file, b)
}

// LoadDir reads every *.yaml spec in dir, by name.
func LoadDir(dir string) (map[string]*Spec, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("listing specs: %w", err)
	}
	out := map[string]*Spec{}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			return nil, err
		}
		if prev, dup := out[s.Name]; dup {
			return nil, fmt.Errorf("%s: spec %q is also defined in %s", f, s.Name, prev.File)
		}
		out[s.Name] = s
	}
	for _, s := range out {
		if b := s.Base.Spec; b != "" {
			if _, ok := out[b]; !ok {
				return nil, fmt.Errorf("%s: base spec %q is not in %s", s.File, b, dir)
			}
		}
	}
	if err := checkCycles(out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkCycles(specs map[string]*Spec) error {
	for name := range specs {
		seen := map[string]bool{}
		for n := name; n != ""; n = specs[n].Base.Spec {
			if seen[n] {
				return fmt.Errorf("%s: base specs form a cycle through %q", specs[name].File, n)
			}
			seen[n] = true
			if specs[n] == nil {
				break
			}
		}
	}
	return nil
}

// Parse decodes and validates a spec; file names it in errors and anchors
// relative paths.
func Parse(file string, data []byte) (*Spec, error) {
	var out *Spec
	n := 0
	err := strictyaml.DecodeAll(file, data, func(doc strictyaml.Document, s *Spec) error {
		n++
		if n > 1 {
			return &strictyaml.Error{File: file, Line: doc.Line(), Reason: "a spec file holds one spec"}
		}
		s.File = file
		errs := &strictyaml.Errors{File: file, Doc: doc}
		s.validate(errs)
		out = s
		return errs.Err()
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, &strictyaml.Error{File: file, Reason: "empty spec"}
	}
	if len(out.Platforms) == 0 {
		out.Platforms = []string{"linux/amd64"}
	}
	return out, nil
}

func (s *Spec) validate(errs *strictyaml.Errors) {
	if !nameRE.MatchString(s.Name) {
		errs.Add("name", "%q is not a lower-case image name", s.Name)
	}
	set := 0
	b := s.Base
	for _, v := range []bool{b.Scratch, b.Image != "", b.Spec != "", b.Layout != "", b.Rootfs != ""} {
		if v {
			set++
		}
	}
	if set != 1 {
		errs.Add("base", "exactly one of scratch, image, spec, layout, rootfs is required, %d set", set)
	}
	if b.Tag != "" && b.Layout == "" {
		errs.Add("base.tag", "only with base.layout")
	}
	// base.layout and base.rootfs may be made after the spec is written
	// (make rootfs); the builder checks them.
	for i, p := range s.Platforms {
		if !platformRE.MatchString(p) {
			errs.Add(fmt.Sprintf("platforms.%d", i), "%q is not os/arch[/variant]", p)
		}
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "= ") {
			errs.Add("env."+k, "is not an environment variable name")
		}
	}
	if s.WorkingDir != "" && !path.IsAbs(s.WorkingDir) {
		errs.Add("workingDir", "%q is not absolute", s.WorkingDir)
	}
	for i, p := range s.Overrides {
		if err := CheckImagePath(p); err != nil {
			errs.Add(fmt.Sprintf("overrides.%d", i), "%s", err.Error())
		}
	}
	names := map[string]int{}
	dests := map[string]string{}
	for i, l := range s.Layers {
		at := func(f string) string { return fmt.Sprintf("layers.%d.%s", i, f) }
		if !nameRE.MatchString(l.Name) {
			errs.Add(at("name"), "%q is not a lower-case name", l.Name)
		} else if j, dup := names[l.Name]; dup {
			errs.Add(at("name"), "%q is also layer %d", l.Name, j)
		}
		names[l.Name] = i
		n := 0
		for _, v := range []bool{l.Dir != nil, l.File != nil, l.Go != nil, l.Wheels != nil} {
			if v {
				n++
			}
		}
		if n != 1 {
			errs.Add(at("name"), "exactly one of dir, file, go, wheels is required, %d set", n)
			continue
		}
		dest := func(f, d string) {
			if err := CheckImagePath(d); err != nil {
				errs.Add(at(f), "%s", err.Error())
				return
			}
			if prev, dup := dests[path.Clean(d)]; dup {
				errs.Add(at(f), "%q is also written by %s", d, prev)
			}
			dests[path.Clean(d)] = "layer " + l.Name
		}
		src := func(f, p string, dir bool) {
			if p == "" {
				errs.Add(at(f), "required")
				return
			}
			fi, err := os.Stat(s.Resolve(p))
			switch {
			case err != nil:
				errs.Add(at(f), "%s", err.Error())
			case dir && !fi.IsDir():
				errs.Add(at(f), "%s is not a directory", p)
			case !dir && !fi.Mode().IsRegular():
				errs.Add(at(f), "%s is not a regular file", p)
			}
		}
		switch {
		case l.Dir != nil:
			src("dir.src", l.Dir.Src, true)
			dest("dir.dest", l.Dir.Dest)
			for j, g := range append(append([]string(nil), l.Dir.Include...), l.Dir.Exclude...) {
				if _, err := path.Match(strings.ReplaceAll(g, "**", "*"), ""); err != nil {
					errs.Add(at("dir"), "pattern %d %q: %s", j, g, err.Error())
				}
			}
		case l.File != nil:
			src("file.src", l.File.Src, false)
			dest("file.dest", l.File.Dest)
			if l.File.Mode != "" {
				if m, err := strconv.ParseUint(l.File.Mode, 8, 32); err != nil || m > 0o7777 {
					errs.Add(at("file.mode"), "%q is not an octal file mode", l.File.Mode)
				}
			}
		case l.Go != nil:
			if l.Go.Package == "" {
				errs.Add(at("go.package"), "required")
			}
			dest("go.dest", l.Go.Dest)
		case l.Wheels != nil:
			w := l.Wheels
			// The lock may be generated later (where an index is
			// reachable); the builder checks it.
			if w.Lock == "" {
				errs.Add(at("wheels.lock"), "required")
			}
			if w.Wheelhouse == "" && w.Index == "" {
				errs.Add(at("wheels"), "a wheelhouse or an index is required")
			}
			if w.Index != "" && !strings.HasPrefix(w.Index, "http://") && !strings.HasPrefix(w.Index, "https://") {
				errs.Add(at("wheels.index"), "%q is not an http(s) URL", w.Index)
			}
			dest("wheels.sitePackages", w.SitePackages)
			dest("wheels.scripts", w.Scripts)
			if w.Prefix != "" {
				if err := CheckImagePath(w.Prefix); err != nil {
					errs.Add(at("wheels.prefix"), "%s", err.Error())
				}
			}
			if w.OwnLayerOver != "" {
				if _, err := ParseSize(w.OwnLayerOver); err != nil {
					errs.Add(at("wheels.ownLayerOver"), "%s", err.Error())
				}
			}
		}
	}
}

// Resolve makes p, relative to the spec's directory (or ~/ for the home
// directory), a path on this machine.
func (s *Spec) Resolve(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if filepath.IsAbs(p) || s.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(s.File), p)
}

// CheckImagePath accepts an absolute, clean path inside the image that
// does not climb out of it.
func CheckImagePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("required")
	case !path.IsAbs(p):
		return fmt.Errorf("%q is not an absolute path in the image", p)
	case strings.Contains("/"+p+"/", "/../"):
		return fmt.Errorf("%q escapes its root through a .. element", p)
	case path.Clean(p) != p && path.Clean(p)+"/" != p:
		return fmt.Errorf("%q is not a clean path (want %q)", p, path.Clean(p))
	}
	return nil
}

// ParseSize reads 123, 64Ki, 32Mi, 2Gi.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size such as 33554432 or 32Mi", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	switch m[2] {
	case "Ki":
		n <<= 10
	case "Mi":
		n <<= 20
	case "Gi":
		n <<= 30
	}
	return n, nil
}
