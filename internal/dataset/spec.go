package dataset

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/strictyaml"
)

// SpecName is the file a user places at the root of a dataset's prefix to
// describe it: its name, task and format, how many files make it complete,
// and, optionally, what to train on it.
const SpecName = "dataset.yaml"

// Spec is a dataset.yaml.
type Spec struct {
	// Name names the dataset: lower-case letters, digits, '.', '_', '-'.
	Name string `yaml:"name"`
	// Task is what the dataset is labelled for (Tasks).
	Task string `yaml:"task"`
	// Format is the layout of its files (Formats of the task).
	Format string `yaml:"format"`
	// Files, when set, is the number of data files under the prefix
	// (every file but dataset.yaml and manifest.json): the dataset is
	// complete only once that many are there.
	Files int `yaml:"files,omitempty"`
	// Bytes, when set, is the total size of the data files: the dataset is
	// complete only once they add up to it.
	Bytes int64 `yaml:"bytes,omitempty"`
	// Classes, when set, are the class names, which the dataset's own
	// (folders, data.yaml names, COCO categories) must match.
	Classes []string `yaml:"classes,omitempty"`
	// Train, when set, asks for a training as soon as the dataset is
	// complete.
	Train *Train `yaml:"train,omitempty"`
	// Retrain asks for a training even when identical content was
	// uploaded and trained on before.
	Retrain bool `yaml:"retrain,omitempty"`

	// file and doc place later problems at their line.
	file string
	doc  strictyaml.Document
}

// Train is the auto-train block of a dataset.yaml.
type Train struct {
	// Model is the catalog model to train, framework/name
	// ("torchvision/resnet18").
	Model string `yaml:"model"`
	// Hyperparameters are the training settings; a zero field means the
	// model's default.
	Hyperparameters TrainHyperparameters `yaml:"hyperparameters,omitempty"`
	// Resources are what the run needs.
	Resources TrainResources `yaml:"resources,omitempty"`
}

// TrainHyperparameters is events.Hyperparameters as dataset.yaml spells
// it (the same names as its JSON). The two types have the same fields, so
// one converts to the other.
type TrainHyperparameters struct {
	Epochs       int            `yaml:"epochs,omitempty"`
	BatchSize    int            `yaml:"batchSize,omitempty"`
	LearningRate float64        `yaml:"learningRate,omitempty"`
	ImageSize    int            `yaml:"imageSize,omitempty"`
	Seed         int64          `yaml:"seed,omitempty"`
	Pretrained   bool           `yaml:"pretrained,omitempty"`
	Extra        map[string]any `yaml:"extra,omitempty"`
}

// TrainResources is events.Resources as dataset.yaml spells it.
type TrainResources struct {
	GPUs     int    `yaml:"gpus,omitempty"`
	CPU      string `yaml:"cpu,omitempty"`
	Memory   string `yaml:"memory,omitempty"`
	Executor string `yaml:"executor,omitempty"`
}

var (
	datasetNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	// modelPartRE is the events package's pattern for the framework and
	// the name of a model.
	modelPartRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	quantityRE  = regexp.MustCompile(`^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$`)
)

// ParseSpec decodes and checks one dataset.yaml. Unknown fields are
// refused; every error names file, line and field, and all of them are
// returned together (each a *strictyaml.Error; FieldErrors lists them).
func ParseSpec(file string, data []byte) (*Spec, error) {
	var out *Spec
	n := 0
	err := strictyaml.DecodeAll(file, data, func(doc strictyaml.Document, s *Spec) error {
		n++
		if n > 1 {
			return &strictyaml.Error{File: file, Line: doc.Line(), Reason: "a dataset.yaml holds one document"}
		}
		errs := &strictyaml.Errors{File: file, Doc: doc}
		s.file, s.doc = file, doc
		s.validate(errs)
		out = s
		return errs.Err()
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, &strictyaml.Error{File: file, Reason: "empty dataset.yaml (name, task and format are required)"}
	}
	return out, nil
}

func (s *Spec) validate(errs *strictyaml.Errors) {
	switch {
	case s.Name == "":
		errs.Add("name", "required")
	case !datasetNameRE.MatchString(s.Name):
		errs.Add("name", "%q is not a dataset name (lower-case letters, digits, '.', '_', '-', starting with a letter or digit)", s.Name)
	}
	for _, fe := range CheckTaskFormat(s.Task, s.Format) {
		errs.Add(fe.Field, "%s", fe.Reason)
	}
	if s.Files < 0 {
		errs.Add("files", "must not be negative")
	}
	if s.Bytes < 0 {
		errs.Add("bytes", "must not be negative")
	}
	for i, c := range s.Classes {
		switch {
		case strings.TrimSpace(c) == "":
			errs.Add(fmt.Sprintf("classes.%d", i), "empty class name")
		case slices.Index(s.Classes, c) < i:
			errs.Add(fmt.Sprintf("classes.%d", i), "%q is listed twice", c)
		}
	}
	if s.Train != nil {
		s.Train.validate(errs)
	}
}

func (t *Train) validate(errs *strictyaml.Errors) {
	fw, name, ok := strings.Cut(t.Model, "/")
	switch {
	case t.Model == "":
		errs.Add("train.model", "required (framework/name, e.g. torchvision/resnet18)")
	case !ok || !modelPartRE.MatchString(fw) || !modelPartRE.MatchString(name):
		errs.Add("train.model", "%q is not framework/name (letters, digits, '.', '_', '-' on each side of one '/')", t.Model)
	}
	h := t.Hyperparameters
	if h.Epochs < 0 {
		errs.Add("train.hyperparameters.epochs", "must be at least 1 (or left out for the model's default)")
	}
	if h.BatchSize < 0 {
		errs.Add("train.hyperparameters.batchSize", "must be at least 1 (or left out for the model's default)")
	}
	if h.LearningRate < 0 {
		errs.Add("train.hyperparameters.learningRate", "must be above 0 (or left out for the model's default)")
	}
	if h.ImageSize != 0 && h.ImageSize < 8 {
		errs.Add("train.hyperparameters.imageSize", "must be at least 8 (or left out for the model's default)")
	}
	r := t.Resources
	if r.GPUs < 0 {
		errs.Add("train.resources.gpus", "must not be negative")
	}
	if r.CPU != "" && !quantityRE.MatchString(r.CPU) {
		errs.Add("train.resources.cpu", "%q is not a Kubernetes quantity", r.CPU)
	}
	if r.Memory != "" && !quantityRE.MatchString(r.Memory) {
		errs.Add("train.resources.memory", "%q is not a Kubernetes quantity", r.Memory)
	}
	if choices := append([]string{"auto"}, events.Executors...); r.Executor != "" && !slices.Contains(choices, r.Executor) {
		errs.Add("train.resources.executor", "%q is not one of %s", r.Executor, strings.Join(choices, ", "))
	}
}

// at is "file:line" of the key at a dotted path, or the file alone for a
// Spec that was not parsed.
func (s *Spec) at(path string) string {
	if s.doc.Node == nil {
		return SpecName
	}
	return fmt.Sprintf("%s:%d", s.file, s.doc.Line(strings.Split(path, ".")...))
}

// TrainModel is the model of the train block, or the zero ModelRef when
// there is none.
func (s *Spec) TrainModel() events.ModelRef {
	if s.Train == nil {
		return events.ModelRef{}
	}
	fw, name, _ := strings.Cut(s.Train.Model, "/")
	return events.ModelRef{Framework: fw, Name: name}
}

// TrainHyperparameters are the hyperparameters of the train block (zero
// fields mean the model's default), or the zero value when there is none.
func (s *Spec) TrainHyperparameters() events.Hyperparameters {
	if s.Train == nil {
		return events.Hyperparameters{}
	}
	return events.Hyperparameters(s.Train.Hyperparameters)
}

// TrainResources are the resources of the train block, or the zero value
// when there is none.
func (s *Spec) TrainResources() events.Resources {
	if s.Train == nil {
		return events.Resources{}
	}
	return events.Resources(s.Train.Resources)
}

// Complete says whether a prefix holding files data files of size bytes
// in all is complete by this spec: at least Files and Bytes when they are
// set. A spec that sets neither is complete at once.
func (s *Spec) Complete(files int, bytes int64) bool {
	return files >= s.Files && bytes >= s.Bytes
}

// IsDataFile says whether the file at path (relative to the dataset's
// prefix) is data: everything but the dataset.yaml and the manifest.json
// at the root. The manifest lists exactly the data files.
func IsDataFile(path string) bool {
	return path != SpecName && path != ManifestName
}
