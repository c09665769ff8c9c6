package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/vision-platform/vp/internal/strictyaml"
)

// file is one catalog file: defaults every model of the file starts from,
// and the models.
type file struct {
	Defaults Model   `yaml:"defaults"`
	Models   []Model `yaml:"models"`
}

var (
	// frameworkRE is an image spec name (images/imagespec).
	frameworkRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)
	// nameRE is events.ModelRef's name pattern.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	tagRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]*$`)
)

// Load reads every *.yaml file of fsys (walked from its root, in path
// order) as catalog files. Decoding is strict: an unknown field, a bad value
// or a missing one is an error naming the file (its path in fsys), the line
// and the field. A framework and name defined twice is an error naming both
// files.
func Load(fsys fs.FS) (*Catalog, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (path.Ext(p) == ".yaml" || path.Ext(p) == ".yml") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing catalog files: %w", err)
	}
	slices.Sort(files)
	c := &Catalog{index: map[string]int{}}
	var errs []error
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("reading catalog file: %w", err)
		}
		models, err := parse(f, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, m := range models {
			key := m.Ref().String()
			if i, dup := c.index[key]; dup {
				errs = append(errs, &strictyaml.Error{File: f, Reason: fmt.Sprintf("model %s is also defined in %s", key, c.models[i].File)})
				continue
			}
			c.index[key] = len(c.models)
			c.models = append(c.models, m)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("loading the catalog: no *.yaml files")
	}
	return c, nil
}

// parse decodes and validates one catalog file.
func parse(name string, data []byte) ([]Model, error) {
	var out []Model
	n := 0
	err := strictyaml.DecodeAll(name, data, func(doc strictyaml.Document, f *file) error {
		n++
		if n > 1 {
			return &strictyaml.Error{File: name, Line: doc.Line(), Reason: "a catalog file holds one document"}
		}
		errs := &strictyaml.Errors{File: name, Doc: doc}
		if len(f.Models) == 0 {
			errs.Add("models", "at least one model is required")
		}
		checkFields(errs, "defaults", f.Defaults)
		d := f.Defaults
		for _, per := range []struct {
			field string
			set   bool
		}{{"name", d.Name != ""}, {"adapterModel", d.AdapterModel != (AdapterModel{})},
			{"paramsMillions", d.ParamsMillions != 0}, {"gpuMemoryGiB", d.GPUMemoryGiB != 0}} {
			if per.set {
				errs.Add("defaults."+per.field, "belongs to a model, not to the defaults")
			}
		}
		for i, own := range f.Models {
			at := fmt.Sprintf("models.%d", i)
			checkFields(errs, at, own)
			m := merge(f.Defaults, own)
			m.File = name
			checkModel(errs, at, m)
			out = append(out, m)
		}
		return errs.Err()
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, &strictyaml.Error{File: name, Reason: "empty catalog file"}
	}
	return out, nil
}

// merge fills what the model leaves out from the file's defaults. Formats
// and input are taken whole; a model that sets its status keeps its own
// reason (or none); tags and references add up.
func merge(d, m Model) Model {
	pick := func(own, def string) string {
		if own != "" {
			return own
		}
		return def
	}
	m.Framework = pick(m.Framework, d.Framework)
	m.Image = pick(m.Image, d.Image)
	m.Adapter = pick(m.Adapter, d.Adapter)
	m.Description = pick(m.Description, d.Description)
	m.Task = pick(m.Task, d.Task)
	m.Variant = pick(m.Variant, d.Variant)
	m.Architecture = pick(m.Architecture, d.Architecture)
	m.Weights = pick(m.Weights, d.Weights)
	m.License = pick(m.License, d.License)
	if len(m.Formats) == 0 {
		m.Formats = d.Formats
	}
	if m.Input == (Input{}) {
		m.Input = d.Input
	}
	if m.Source == nil {
		m.Source = d.Source
	}
	if m.Recommended.Epochs == 0 {
		m.Recommended.Epochs = d.Recommended.Epochs
	}
	if m.Recommended.BatchSize == 0 {
		m.Recommended.BatchSize = d.Recommended.BatchSize
	}
	if m.Recommended.LearningRate == 0 {
		m.Recommended.LearningRate = d.Recommended.LearningRate
	}
	if m.Status == "" {
		m.Status = d.Status
		if m.Reason == "" {
			m.Reason = d.Reason
		}
	}
	m.Tags = union(d.Tags, m.Tags)
	m.References = union(d.References, m.References)
	return m
}

func union(a, b []string) []string {
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// checkFields checks the values an entry (or the defaults) sets itself.
func checkFields(errs *strictyaml.Errors, at string, m Model) {
	field := func(f string) string { return at + "." + f }
	oneOf := func(f, v string, allowed []string) {
		if v != "" && !slices.Contains(allowed, v) {
			errs.Add(field(f), "%q is not one of %s", v, strings.Join(allowed, ", "))
		}
	}
	if m.Name != "" && !nameRE.MatchString(m.Name) {
		errs.Add(field("name"), "%q is not a model name (letters, digits, '.', '_', '-')", m.Name)
	}
	if m.Framework != "" && !frameworkRE.MatchString(m.Framework) {
		errs.Add(field("framework"), "%q is not an image spec name (lower case)", m.Framework)
	}
	if m.Image != "" && !frameworkRE.MatchString(m.Image) {
		errs.Add(field("image"), "%q is not an image spec name (lower case)", m.Image)
	}
	oneOf("adapter", m.Adapter, Adapters)
	oneOf("task", m.Task, Tasks)
	for i, f := range m.Formats {
		oneOf(fmt.Sprintf("formats.%d", i), f, Formats)
	}
	for i, t := range m.Tags {
		if !tagRE.MatchString(t) {
			errs.Add(fmt.Sprintf("%s.tags.%d", at, i), "%q is not a lower-case tag", t)
		}
	}
	oneOf("status", m.Status, []string{StatusReady, StatusUnavailable})
	in := m.Input
	for _, s := range []struct {
		name string
		v    int
	}{{"size", in.Size}, {"height", in.Height}, {"width", in.Width}} {
		if s.v < 0 || (s.v > 0 && s.v < 8) {
			errs.Add(field("input."+s.name), "%d is not a side length of at least 8 px", s.v)
		}
	}
	r := m.Recommended
	if r.Epochs < 0 {
		errs.Add(field("recommended.epochs"), "must be at least 1, got %d", r.Epochs)
	}
	if r.BatchSize < 0 {
		errs.Add(field("recommended.batchSize"), "must be at least 1, got %d", r.BatchSize)
	}
	if r.LearningRate < 0 {
		errs.Add(field("recommended.learningRate"), "must be greater than 0, got %g", r.LearningRate)
	}
	if m.ParamsMillions < 0 {
		errs.Add(field("paramsMillions"), "must not be negative")
	}
	if m.GPUMemoryGiB < 0 {
		errs.Add(field("gpuMemoryGiB"), "must not be negative")
	}
	for i, ref := range m.References {
		if !strings.HasPrefix(ref, "https://") {
			errs.Add(fmt.Sprintf("%s.references.%d", at, i), "%q is not an https URL", ref)
		}
	}
	if s := m.Source; s != nil {
		if !strings.HasPrefix(s.Repository, "https://") {
			errs.Add(field("source.repository"), "%q is not an https URL", s.Repository)
		}
		if s.Dir == "" || path.IsAbs(s.Dir) || strings.HasPrefix(path.Clean(s.Dir), "..") {
			errs.Add(field("source.dir"), "%q is not a path inside the repository", s.Dir)
		}
	}
}

// checkModel checks an entry once the defaults are in: what is required
// and what goes together.
func checkModel(errs *strictyaml.Errors, at string, m Model) {
	field := func(f string) string { return at + "." + f }
	for _, r := range []struct{ name, v string }{
		{"name", m.Name}, {"framework", m.Framework}, {"adapter", m.Adapter}, {"description", m.Description},
		{"task", m.Task}, {"status", m.Status},
	} {
		if strings.TrimSpace(r.v) == "" {
			errs.Add(field(r.name), "required")
		}
	}
	if len(m.Formats) == 0 {
		errs.Add(field("formats"), "at least one dataset format is required")
	}
	if m.Variant != "" && !slices.Contains(Variants[m.Task], m.Variant) {
		if v := Variants[m.Task]; len(v) > 0 {
			errs.Add(field("variant"), "%q is not a variant of %s (%s)", m.Variant, m.Task, strings.Join(v, ", "))
		} else {
			errs.Add(field("variant"), "task %s has no variants", m.Task)
		}
	}
	in := m.Input
	switch {
	case in.Size > 0 && (in.Height > 0 || in.Width > 0):
		errs.Add(field("input"), "size, or height and width, not both")
	case (in.Height > 0) != (in.Width > 0):
		errs.Add(field("input"), "height and width go together")
	case in.Fixed && in.Size == 0 && in.Height == 0:
		errs.Add(field("input.fixed"), "a fixed input needs its size")
	}
	r := m.Recommended
	if r.Epochs == 0 {
		errs.Add(field("recommended.epochs"), "required")
	}
	if r.BatchSize == 0 {
		errs.Add(field("recommended.batchSize"), "required")
	}
	if r.LearningRate == 0 {
		errs.Add(field("recommended.learningRate"), "required")
	}
	switch {
	case m.Status == StatusUnavailable && strings.TrimSpace(m.Reason) == "":
		errs.Add(field("reason"), "an unavailable model needs the reason")
	case m.Status == StatusReady && m.Reason != "":
		errs.Add(field("reason"), "a ready model has no reason")
	}
	if m.Adapter == "custom" && m.Source == nil {
		errs.Add(field("source"), "a custom model needs its source repository")
	}
	if len(m.References) == 0 {
		errs.Add(field("references"), "say where the facts came from")
	}
}
