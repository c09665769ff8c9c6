package registry

import (
	"fmt"

	"github.com/vision-platform/vp/events"
)

// Statuses of a model.
const (
	// StatusReady: the model's image and adapter can train it today.
	StatusReady = "ready"
	// StatusUnavailable: something is missing; Model.Reason says what.
	StatusUnavailable = "unavailable"
)

// Adapters are the Python training adapters of the SDK
// (images/python/vp_sdk/adapters/<name>_adapter.py).
var Adapters = []string{"torchvision", "timm", "huggingface", "ultralytics", "custom"}

// Tasks a catalog entry may name: the event vocabulary's dataset tasks.
var Tasks = []string{events.TaskClassification, events.TaskDetection, events.TaskSegmentation, events.TaskPose, events.TaskCaptioning}

// Variants refine a task where the dataset's labels differ within it:
// oriented boxes (8 coordinates a box) are detection labels no axis-aligned
// detector reads, instance masks are not semantic label maps.
var Variants = map[string][]string{
	events.TaskDetection:    {"obb"},
	events.TaskSegmentation: {"instance", "semantic"},
}

// Formats are the dataset formats a model may accept (the event
// vocabulary's).
var Formats = []string{events.FormatImageFolder, events.FormatYOLO, events.FormatCOCO}

// Model is one entry of the catalog. Facts (parameters, input size,
// licence) come from the model's own card and code, named in References;
// a fact nobody checked is left empty.
type Model struct {
	// Name is the model's name within its framework (events.ModelRef.Name).
	Name string `yaml:"name" json:"name"`
	// Framework is the framework image it trains in: an image spec name in
	// images/frameworks (events.ModelRef.Framework).
	Framework string `yaml:"framework" json:"framework"`
	// Image is the image spec it trains in, when not the one named after
	// its framework (see ImageSpec).
	Image string `yaml:"image,omitempty" json:"image,omitempty"`
	// Adapter is the SDK adapter that trains it (one of Adapters).
	Adapter     string `yaml:"adapter" json:"adapter"`
	Description string `yaml:"description" json:"description"`
	// Task is what it is trained for (one of Tasks); Variant refines it
	// (one of Variants[Task]).
	Task    string `yaml:"task" json:"task"`
	Variant string `yaml:"variant,omitempty" json:"variant,omitempty"`
	// Formats are the dataset formats it accepts.
	Formats []string `yaml:"formats" json:"formats"`
	// Architecture is what builds the network: a timm or torchvision model
	// name, a transformers class, an ultralytics model YAML, a repository's
	// model.
	Architecture string `yaml:"architecture,omitempty" json:"architecture,omitempty"`
	// Weights are the pretrained weights used when a job asks for
	// pretrained: a timm tag, a Hugging Face Hub id, an ultralytics .pt, a
	// torchvision weights enum.
	Weights string `yaml:"weights,omitempty" json:"weights,omitempty"`
	// AdapterModel is what the adapter's --model gets.
	AdapterModel AdapterModel `yaml:"adapterModel,omitempty" json:"adapterModel,omitzero"`
	// Source is set for a model that exists only as a repository: the
	// image takes the user's copy of it as a layer.
	Source *Source `yaml:"source,omitempty" json:"source,omitempty"`
	Input  Input   `yaml:"input,omitempty" json:"input,omitzero"`
	// ParamsMillions is the parameter count in millions, as its source
	// gives it (with the source's number of classes).
	ParamsMillions float64 `yaml:"paramsMillions,omitempty" json:"paramsMillions,omitempty"`
	// GPUMemoryGiB is the peak GPU memory of a training run at the
	// recommended batch size and input size, once measured.
	GPUMemoryGiB float64     `yaml:"gpuMemoryGiB,omitempty" json:"gpuMemoryGiB,omitempty"`
	Recommended  Recommended `yaml:"recommended,omitempty" json:"recommended"`
	// License is the licence of the code and weights the model uses (SPDX
	// id where there is one).
	License string   `yaml:"license,omitempty" json:"license,omitempty"`
	Tags    []string `yaml:"tags,omitempty" json:"tags,omitempty"`
	// Status is StatusReady or StatusUnavailable; Reason says why a model
	// is unavailable.
	Status string `yaml:"status" json:"status"`
	Reason string `yaml:"reason,omitempty" json:"reason,omitempty"`
	// References are where the facts came from.
	References []string `yaml:"references,omitempty" json:"references,omitempty"`

	// File is the catalog file the entry came from.
	File string `yaml:"-" json:"-"`
}

// AdapterModel is what the adapter's --model gets: Scratch to train from
// scratch (default: the model's name), Pretrained when the job asks for
// pretrained weights (default: Scratch).
type AdapterModel struct {
	Scratch    string `yaml:"scratch,omitempty" json:"scratch,omitempty"`
	Pretrained string `yaml:"pretrained,omitempty" json:"pretrained,omitempty"`
}

// Source is a model's source repository. The image spec takes the user's
// copy of it from Dir (relative to the repository root) as a layer;
// nothing is cloned at build or run time.
type Source struct {
	Repository string `yaml:"repository" json:"repository"`
	Dir        string `yaml:"dir" json:"dir"`
}

// Input is the input size. Size is the default side length in pixels
// (hyperparameters.imageSize); Height and Width are set instead where the
// input is not square. Fixed means the network as the adapter builds it
// takes this size only.
type Input struct {
	Size   int  `yaml:"size,omitempty" json:"size,omitempty"`
	Height int  `yaml:"height,omitempty" json:"height,omitempty"`
	Width  int  `yaml:"width,omitempty" json:"width,omitempty"`
	Fixed  bool `yaml:"fixed,omitempty" json:"fixed,omitempty"`
}

func (in Input) String() string {
	if in.Size > 0 {
		return fmt.Sprintf("%d px", in.Size)
	}
	return fmt.Sprintf("%d×%d px (height×width)", in.Height, in.Width)
}

// Recommended are the hyperparameters to start from.
type Recommended struct {
	Epochs       int     `yaml:"epochs,omitempty" json:"epochs"`
	BatchSize    int     `yaml:"batchSize,omitempty" json:"batchSize"`
	LearningRate float64 `yaml:"learningRate,omitempty" json:"learningRate"`
}

// Ref is the model's reference in a job.
func (m Model) Ref() events.ModelRef {
	return events.ModelRef{Framework: m.Framework, Name: m.Name}
}

// ImageSpec is the image spec in images/frameworks the model trains in:
// Image when set, else the spec named after its framework.
func (m Model) ImageSpec() string {
	if m.Image != "" {
		return m.Image
	}
	return m.Framework
}

// Ready says whether the model can be trained today.
func (m Model) Ready() bool { return m.Status == StatusReady }

// Defaults are the hyperparameters a job for the model starts from: the
// recommended epochs, batch size and learning rate, and the default input
// size (left 0 where the input is not square: the model's config sets it).
func (m Model) Defaults() events.Hyperparameters {
	return events.Hyperparameters{
		Epochs:       m.Recommended.Epochs,
		BatchSize:    m.Recommended.BatchSize,
		LearningRate: m.Recommended.LearningRate,
		ImageSize:    m.Input.Size,
	}
}

// WithDefaults fills the hyperparameters h leaves zero (epochs, batch
// size, learning rate, image size) from the model's Defaults.
func (m Model) WithDefaults(h events.Hyperparameters) events.Hyperparameters {
	def := m.Defaults()
	if h.Epochs == 0 {
		h.Epochs = def.Epochs
	}
	if h.BatchSize == 0 {
		h.BatchSize = def.BatchSize
	}
	if h.LearningRate == 0 {
		h.LearningRate = def.LearningRate
	}
	if h.ImageSize == 0 {
		h.ImageSize = def.ImageSize
	}
	return h
}

// AdapterArg is what the adapter's --model gets for a job that does or
// does not ask for pretrained weights.
func (m Model) AdapterArg(pretrained bool) string {
	scratch := m.AdapterModel.Scratch
	if scratch == "" {
		scratch = m.Name
	}
	if pretrained && m.AdapterModel.Pretrained != "" {
		return m.AdapterModel.Pretrained
	}
	return scratch
}
