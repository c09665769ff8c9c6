package wheel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ResolveOptions say where pip looks for wheels and for which interpreter
// and platforms it resolves. pip resolves; the image's interpreter need not
// be the one running pip.
type ResolveOptions struct {
	// Python runs pip (python -m pip); default /usr/bin/python3.
	Python string
	// Index is a PEP 503/691 simple index URL; FindLinks are directories
	// (or pages) of wheels. With neither, pip uses its configured index.
	Index     string
	FindLinks []string
	// PythonVersion is the image's Python ("3.11").
	PythonVersion string
	// Platforms are wheel platform tags, one resolution each
	// ("manylinux_2_36_x86_64"); the lock pins the union of their hashes.
	Platforms []string
	// Implementation is the interpreter tag; default "cp".
	Implementation string
}

// PlatformTag is the wheel platform tag of an image platform (os/arch)
// for a glibc of the given version ("2.36"). Resolve also takes the wheels
// of every older manylinux tag of that architecture (see compatibleTags).
func PlatformTag(platform, glibc string) (string, error) {
	arch := map[string]string{"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm64/v8": "aarch64", "linux/ppc64le": "ppc64le", "linux/s390x": "s390x"}[platform]
	if arch == "" {
		return "", fmt.Errorf("no manylinux tag for platform %s", platform)
	}
	return "manylinux_" + strings.ReplaceAll(glibc, ".", "_") + "_" + arch, nil
}

// Resolve runs pip's resolver over a requirements file (pip install
// --dry-run --report, binary wheels only) once per platform and returns
// every wheel it chose, pinned with the sha256 pip saw. A name resolved to
// different versions on two platforms is an error: one lock serves all of
// an image's platforms.
func Resolve(ctx context.Context, requirements string, o ResolveOptions) ([]Requirement, error) {
	if o.Python == "" {
		o.Python = "/usr/bin/python3"
	}
	if o.Implementation == "" {
		o.Implementation = "cp"
	}
	if len(o.Platforms) == 0 {
		return nil, errors.New("resolve: no platform")
	}
	if _, err := os.Stat(requirements); err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	byName := map[string]*Requirement{}
	seenOn := map[string]string{} // name -> the platform that first resolved it
	for _, platform := range o.Platforms {
		got, err := resolveOne(ctx, requirements, platform, o)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			n := Normalize(r.Name)
			prev, ok := byName[n]
			switch {
			case !ok:
				byName[n] = &r
				seenOn[n] = platform
			case prev.Version != r.Version:
				return nil, fmt.Errorf("resolve %s: %s is %s on %s but %s on %s; pin it in the requirements",
					requirements, r.Name, r.Version, platform, prev.Version, seenOn[n])
			default:
				for _, h := range r.Hashes {
					if !prev.Allows(h) {
						prev.Hashes = append(prev.Hashes, h)
					}
				}
			}
		}
	}
	out := make([]Requirement, 0, len(byName))
	for _, r := range byName {
		sort.Strings(r.Hashes)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return Normalize(out[i].Name) < Normalize(out[j].Name) })
	return out, nil
}

// pipReport is the part of pip's installation report (--report) read here.
type pipReport struct {
	Install []struct {
		DownloadInfo struct {
			URL         string `json:"url"`
			ArchiveInfo struct {
				Hash   string            `json:"hash"`   // "sha256=<hex>"
				Hashes map[string]string `json:"hashes"` // newer pips
			} `json:"archive_info"`
		} `json:"download_info"`
		Metadata struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"metadata"`
	} `json:"install"`
}

// manylinuxRE reads a perennial manylinux tag (PEP 600).
var manylinuxRE = regexp.MustCompile(`^manylinux_(\d+)_(\d+)_([a-z0-9_]+)$`)

// compatibleTags lists the platform tags whose wheels run on a manylinux
// platform, newest first: manylinux_2_36_x86_64 runs manylinux_2_35 ...
// manylinux_2_5 wheels and their legacy names (manylinux2014, 2010, 1).
// pip takes --platform literally for perennial tags (it widens only the
// legacy ones), so Resolve passes them all; any other tag stands alone.
func compatibleTags(tag string) []string {
	m := manylinuxRE.FindStringSubmatch(tag)
	if m == nil || m[1] != "2" {
		return []string{tag}
	}
	minor, _ := strconv.Atoi(m[2])
	arch := m[3]
	// The oldest glibc each architecture had manylinux wheels for.
	floor := 17
	if arch == "x86_64" || arch == "i686" {
		floor = 5
	}
	legacy := map[int]string{17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
	var out []string
	for v := minor; v >= floor; v-- {
		out = append(out, fmt.Sprintf("manylinux_2_%d_%s", v, arch))
		if l, ok := legacy[v]; ok {
			out = append(out, l+"_"+arch)
		}
	}
	return out
}

func resolveOne(ctx context.Context, requirements, platform string, o ResolveOptions) ([]Requirement, error) {
	tmp, err := os.MkdirTemp("", "vp-resolve-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	report := filepath.Join(tmp, "report.json")
	args := []string{"-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
		"--disable-pip-version-check", "--no-input", "--report", report,
		"--only-binary=:all:", "--target", filepath.Join(tmp, "target"),
		"--implementation", o.Implementation}
	for _, tag := range compatibleTags(platform) {
		args = append(args, "--platform", tag)
	}
	if o.PythonVersion != "" {
		args = append(args, "--python-version", o.PythonVersion)
	}
	if o.Index != "" {
		args = append(args, "--index-url", o.Index)
	} else if len(o.FindLinks) > 0 {
		args = append(args, "--no-index")
	}
	for _, l := range o.FindLinks {
		args = append(args, "--find-links", l)
	}
	args = append(args, "--requirement", requirements)
	cmd := exec.CommandContext(ctx, o.Python, args...)
	// The user's pip configuration must not change what is resolved.
	cmd.Env = append(os.Environ(), "PIP_CONFIG_FILE="+os.DevNull, "PYTHONNOUSERSITE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("resolve %s for %s: %s %s: %w\n%s", requirements, platform, o.Python, strings.Join(args[:3], " "), err, lastLines(stderr.String(), 12))
	}
	b, err := os.ReadFile(report)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: pip wrote no report: %w", requirements, err)
	}
	var rep pipReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("resolve %s: reading pip's report: %w", requirements, err)
	}
	out := make([]Requirement, 0, len(rep.Install))
	for _, in := range rep.Install {
		sum := in.DownloadInfo.ArchiveInfo.Hashes["sha256"]
		if h, ok := strings.CutPrefix(in.DownloadInfo.ArchiveInfo.Hash, "sha256="); ok && sum == "" {
			sum = h
		}
		if in.Metadata.Name == "" || in.Metadata.Version == "" || len(sum) != 64 {
			return nil, fmt.Errorf("resolve %s: pip's report gives no name, version or sha256 for %s", requirements, in.DownloadInfo.URL)
		}
		if !strings.HasSuffix(in.DownloadInfo.URL, ".whl") {
			return nil, fmt.Errorf("resolve %s: %s==%s is not a wheel (%s)", requirements, in.Metadata.Name, in.Metadata.Version, in.DownloadInfo.URL)
		}
		out = append(out, Requirement{Name: in.Metadata.Name, Version: in.Metadata.Version, Hashes: []string{sum}})
	}
	return out, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WriteLock writes requirements as a lock file ParseLock reads (and pip
// install --require-hashes too): a comment header, then name==version with
// one --hash option per line, sorted by name.
func WriteLock(w io.Writer, header string, reqs []Requirement) error {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(header), "\n") {
		b.WriteString(strings.TrimRight("# "+line, " ") + "\n")
	}
	sorted := append([]Requirement(nil), reqs...)
	sort.Slice(sorted, func(i, j int) bool { return Normalize(sorted[i].Name) < Normalize(sorted[j].Name) })
	for _, r := range sorted {
		if len(r.Hashes) == 0 {
			return fmt.Errorf("%s==%s has no hash", r.Name, r.Version)
		}
		b.WriteString(Normalize(r.Name) + "==" + r.Version)
		for _, h := range r.Hashes {
			b.WriteString(" \\\n    --hash=sha256:" + h)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
