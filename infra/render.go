package infra

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/vision-platform/vp/functions/funcyaml"
)

// Names the rendered manifests use.
const (
	// ConfigMap holds the settings func.yaml gives as {{ env:NAME }}.
	ConfigMap = "vp-config"
	// GPURunner launches the runs as Jobs: its RBAC and VP_EXECUTOR.
	GPURunner = "gpu-runner"
	// DeadLetter is the broker's dead-letter sink.
	DeadLetter = "dead-letter"
	// DatasetIntake is MinIO's webhook target.
	DatasetIntake = "dataset-intake"
	// PartOf labels every object.
	PartOf = "vision-platform"
)

// The folders of the rendered tree (under infra/), each a kustomization.
const (
	BaseDir      = "base"
	DevDir       = "overlays/dev"
	GPUDir       = "overlays/gpu"
	TemplatesDir = "templates"
)

// ManagedDirs are the folders whose *.yaml files Render writes: Write
// removes the ones it no longer renders.
var ManagedDirs = []string{BaseDir, DevDir, GPUDir, TemplatesDir}

// ErrNoFunctions is Render's error for an empty list of functions.
var ErrNoFunctions = errors.New("no functions to render")

// Output is the rendered tree: paths relative to infra/ (slash-separated)
// and their contents.
type Output struct {
	Files map[string][]byte
}

// Paths lists the rendered files in order.
func (o *Output) Paths() []string {
	ps := make([]string, 0, len(o.Files))
	for p := range o.Files {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// LoadFunctions reads every functions/*/func.yaml under root (the
// repository), by name.
func LoadFunctions(root string) ([]*funcyaml.Function, error) {
	files, err := filepath.Glob(filepath.Join(root, "functions", "*", "func.yaml"))
	if err != nil {
		return nil, fmt.Errorf("listing func.yaml files: %w", err)
	}
	var out []*funcyaml.Function
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading func.yaml: %w", err)
		}
		spec, err := funcyaml.Parse(f, b)
		if err != nil {
			return nil, err
		}
		out = append(out, spec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Render makes the manifests of the functions fns: the kustomize base
// (a Knative Service per function with its Triggers, the Broker, the
// vp-config ConfigMap, the gpu-runner's RBAC, the MinIO webhook Job), the
// dev and gpu overlays, and the GPU Job template.
func Render(fns []*funcyaml.Function, opts ...Option) (*Output, error) {
	if len(fns) == 0 {
		return nil, ErrNoFunctions
	}
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, f := range fns {
		if seen[f.Name] {
			return nil, fmt.Errorf("function %s is defined twice", f.Name)
		}
		seen[f.Name] = true
	}
	for fn := range o.images {
		if !seen[fn] {
			return nil, &OptionError{Field: FieldImages, Value: fn, Err: fmt.Errorf("no such function")}
		}
	}
	r := &renderer{o: o, fns: fns, has: seen}
	return r.render()
}

// Write writes out under dir (infra/), and removes the *.yaml files of the
// managed folders that out no longer has.
func (out *Output) Write(dir string) error {
	for _, p := range out.Paths() {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("writing manifests: %w", err)
		}
		if err := os.WriteFile(full, out.Files[p], 0o644); err != nil {
			return fmt.Errorf("writing manifests: %w", err)
		}
	}
	stale, err := out.stale(dir)
	if err != nil {
		return err
	}
	for _, p := range stale {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(p))); err != nil {
			return fmt.Errorf("removing a stale manifest: %w", err)
		}
	}
	return nil
}

// stale lists the *.yaml files of the managed folders under dir that out
// does not render.
func (out *Output) stale(dir string) ([]string, error) {
	var stale []string
	for _, d := range ManagedDirs {
		files, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(d), "*.yaml"))
		if err != nil {
			return nil, fmt.Errorf("listing manifests: %w", err)
		}
		for _, f := range files {
			p := path.Join(d, filepath.Base(f))
			if _, ok := out.Files[p]; !ok {
				stale = append(stale, p)
			}
		}
	}
	return stale, nil
}

// Diff compares out with the tree under dir: the files that differ, are
// missing, or are stale (there and no longer rendered), each with a reason.
func (out *Output) Diff(dir string) ([]string, error) {
	var diffs []string
	for _, p := range out.Paths() {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		switch {
		case errors.Is(err, os.ErrNotExist):
			diffs = append(diffs, p+": missing")
		case err != nil:
			return nil, fmt.Errorf("reading manifests: %w", err)
		case !bytes.Equal(b, out.Files[p]):
			diffs = append(diffs, p+": differs")
		}
	}
	stale, err := out.stale(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range stale {
		diffs = append(diffs, p+": no longer rendered")
	}
	slices.Sort(diffs)
	return diffs, nil
}

// header starts every rendered file.
func header(what string) string {
	return "# " + strings.ReplaceAll(what, "\n", "\n# ") + "\n# Generated by vp deploy render (infra/) from functions/*/func.yaml: do not edit.\n"
}
