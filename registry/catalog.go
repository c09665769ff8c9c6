package registry

import (
	"embed"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vision-platform/vp/events"
)

// Catalog is a loaded, validated set of models. It is read-only and safe
// for concurrent use.
type Catalog struct {
	models []Model
	index  map[string]int // framework/name -> models
}

//go:embed models/*.yaml
var embedded embed.FS

var loadDefault = sync.OnceValues(func() (*Catalog, error) { return Load(embedded) })

// Default is the catalog embedded in the binary (registry/models/*.yaml),
// loaded once. The files are checked by this package's tests, so a bad
// embedded catalog is a build that must not ship: Default panics on it.
func Default() *Catalog {
	c, err := loadDefault()
	if err != nil {
		panic("registry: the embedded catalog does not load: " + err.Error())
	}
	return c
}

// Models are every model, in catalog order (file path, then the order in
// the file).
func (c *Catalog) Models() []Model { return slices.Clone(c.models) }

// Lookup finds the model framework/name; an error wraps ErrUnknownModel.
func (c *Catalog) Lookup(framework, name string) (Model, error) {
	i, ok := c.index[framework+"/"+name]
	if !ok {
		return Model{}, fmt.Errorf("looking up model %s/%s: %w", framework, name, ErrUnknownModel)
	}
	return c.models[i], nil
}

// Query selects models; empty fields match everything.
type Query struct {
	// Framework is the framework image (exact).
	Framework string
	// Task is the model's task (exact).
	Task string
	// Tag is one of the model's tags (exact, case-insensitive).
	Tag string
	// Text is found, case-insensitively, in the name, the description or a
	// tag.
	Text string
}

// Filter returns the models q selects, in catalog order.
func (c *Catalog) Filter(q Query) []Model {
	text := strings.ToLower(strings.TrimSpace(q.Text))
	var out []Model
	for _, m := range c.models {
		switch {
		case q.Framework != "" && m.Framework != q.Framework,
			q.Task != "" && m.Task != q.Task,
			q.Tag != "" && !slices.ContainsFunc(m.Tags, func(t string) bool { return strings.EqualFold(t, q.Tag) }):
			continue
		}
		if text != "" && !strings.Contains(strings.ToLower(m.Name), text) &&
			!strings.Contains(strings.ToLower(m.Description), text) &&
			!slices.ContainsFunc(m.Tags, func(t string) bool { return strings.Contains(strings.ToLower(t), text) }) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// Frameworks are the framework images the catalog's models train in,
// sorted.
func (c *Catalog) Frameworks() []string {
	return c.distinct(func(m Model) string { return m.Framework })
}

// Tasks are the tasks the catalog's models are trained for, sorted.
func (c *Catalog) Tasks() []string {
	return c.distinct(func(m Model) string { return m.Task })
}

func (c *Catalog) distinct(f func(Model) string) []string {
	var out []string
	for _, m := range c.models {
		if v := f(m); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// CheckJob checks a job against the catalog: the model exists and is
// ready, takes the dataset's task and format, and, where the model fixes
// its input size, the job asks for that size (or none: the model's
// default). Each problem names its field within the job's payload
// (model.name, model, dataset.format, dataset.task,
// hyperparameters.imageSize), sorted by field. No problems is nil.
func (c *Catalog) CheckJob(j events.JobRequestedData) []events.FieldError {
	ref := j.Model
	m, err := c.Lookup(ref.Framework, ref.Name)
	if err != nil {
		if !slices.Contains(c.Frameworks(), ref.Framework) {
			return []events.FieldError{{Field: "model.framework", Reason: fmt.Sprintf("no framework %q in the catalog (known: %s)", ref.Framework, strings.Join(c.Frameworks(), ", "))}}
		}
		return []events.FieldError{{Field: "model.name", Reason: fmt.Sprintf("no model %s in the catalog", ref)}}
	}
	var out []events.FieldError
	add := func(field, format string, args ...any) {
		out = append(out, events.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !m.Ready() {
		add("model", "%s is unavailable: %s", ref, m.Reason)
	}
	if d := j.Dataset; d.Task != m.Task {
		add("dataset.task", "%s is trained for %s, not %s", ref, m.taskName(), orNone(d.Task))
	}
	if f := j.Dataset.Format; !slices.Contains(m.Formats, f) {
		add("dataset.format", "%s takes %s datasets, not %s", ref, strings.Join(m.Formats, " or "), orNone(f))
	}
	if size, in := j.Hyperparameters.ImageSize, m.Input; size != 0 && in.Fixed {
		switch {
		case in.Size > 0 && size != in.Size:
			add("hyperparameters.imageSize", "%s takes %s input only, not %d px", ref, in, size)
		case in.Size == 0:
			add("hyperparameters.imageSize", "%s takes %s input, set by its config; leave imageSize out", ref, in)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Field < out[b].Field })
	return out
}

func (m Model) taskName() string {
	if m.Variant != "" {
		return m.Task + " (" + m.Variant + ")"
	}
	return m.Task
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
