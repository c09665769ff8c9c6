package dataset

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vision-platform/vp/events"
)

const goodSpec = `name: cats
task: classification
format: imagefolder
files: 64
bytes: 123456
classes: [cat, dog]
train:
  model: torchvision/resnet18
  hyperparameters: {epochs: 2, batchSize: 8, learningRate: 0.01, imageSize: 32, extra: {workers: 0}}
  resources: {gpus: 0, executor: process}
retrain: true
`

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   string
		want *Spec
	}{{
		desc: "every field",
		in:   goodSpec,
		want: &Spec{
			Name: "cats", Task: "classification", Format: "imagefolder", Files: 64, Bytes: 123456,
			Classes: []string{"cat", "dog"},
			Train: &Train{
				Model:           "torchvision/resnet18",
				Hyperparameters: TrainHyperparameters{Epochs: 2, BatchSize: 8, LearningRate: 0.01, ImageSize: 32, Extra: map[string]any{"workers": 0}},
				Resources:       TrainResources{GPUs: 0, Executor: "process"},
			},
			Retrain: true,
		},
	}, {
		desc: "the required fields only",
		in:   "name: street-signs_v2.1\ntask: detection\nformat: coco\n",
		want: &Spec{Name: "street-signs_v2.1", Task: "detection", Format: "coco"},
	}, {
		desc: "a train block without hyperparameters takes the model's defaults",
		in:   "name: people\ntask: pose\nformat: yolo\ntrain:\n  model: ultralytics/yolov8n-pose\n",
		want: &Spec{Name: "people", Task: "pose", Format: "yolo", Train: &Train{Model: "ultralytics/yolov8n-pose"}},
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := ParseSpec("dataset.yaml", []byte(tc.in))
			if err != nil {
				t.Fatalf("ParseSpec() = %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreUnexported(Spec{})); diff != "" {
				t.Errorf("ParseSpec() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   string
		want []events.FieldError
	}{{
		desc: "unknown field, named with its line",
		in:   "name: cats\ntask: classification\nformat: imagefolder\nlabels: [cat]\n",
		want: []events.FieldError{{Field: "dataset.yaml:4", Reason: "field labels not found in type dataset.Spec"}},
	}, {
		desc: "unknown field in the train block",
		in:   "name: cats\ntask: classification\nformat: imagefolder\ntrain:\n  model: torchvision/resnet18\n  epochs: 3\n",
		want: []events.FieldError{{Field: "dataset.yaml:6", Reason: "field epochs not found in type dataset.Train"}},
	}, {
		desc: "wrong type",
		in:   "name: cats\ntask: classification\nformat: imagefolder\nfiles: many\n",
		want: []events.FieldError{{Field: "dataset.yaml:4", Reason: "files: cannot unmarshal !!str `many` into int"}},
	}, {
		desc: "bad task",
		in:   "name: cats\ntask: ocr\nformat: coco\n",
		want: []events.FieldError{{Field: "dataset.yaml:2", Reason: `task: "ocr" is not one of classification, detection, segmentation, pose, captioning`}},
	}, {
		desc: "format that does not fit the task, bad name",
		in:   "name: Cats!\ntask: classification\nformat: yolo\n",
		want: []events.FieldError{
			{Field: "dataset.yaml:1", Reason: `name: "Cats!" is not a dataset name (lower-case letters, digits, '.', '_', '-', starting with a letter or digit)`},
			{Field: "dataset.yaml:3", Reason: "format: yolo does not fit task classification (classification takes imagefolder)"},
		},
	}, {
		desc: "missing name, task and format",
		in:   "files: 3\n",
		want: []events.FieldError{
			{Field: "dataset.yaml:1", Reason: "name: required"},
			{Field: "dataset.yaml:1", Reason: "task: required (one of classification, detection, segmentation, pose, captioning)"},
			{Field: "dataset.yaml:1", Reason: "format: required (one of imagefolder, yolo, coco)"},
		},
	}, {
		desc: "bad train block",
		in: `name: cats
task: classification
format: imagefolder
files: -1
classes: [cat, cat, ""]
train:
  model: resnet18
  hyperparameters:
    epochs: -2
    learningRate: -0.1
    imageSize: 4
  resources:
    gpus: -1
    memory: lots
    executor: slurm
`,
		want: []events.FieldError{
			{Field: "dataset.yaml:4", Reason: "files: must not be negative"},
			{Field: "dataset.yaml:5", Reason: `classes.1: "cat" is listed twice`},
			{Field: "dataset.yaml:5", Reason: "classes.2: empty class name"},
			{Field: "dataset.yaml:7", Reason: `train.model: "resnet18" is not framework/name (letters, digits, '.', '_', '-' on each side of one '/')`},
			{Field: "dataset.yaml:9", Reason: "train.hyperparameters.epochs: must be at least 1 (or left out for the model's default)"},
			{Field: "dataset.yaml:10", Reason: "train.hyperparameters.learningRate: must be above 0 (or left out for the model's default)"},
			{Field: "dataset.yaml:11", Reason: "train.hyperparameters.imageSize: must be at least 8 (or left out for the model's default)"},
			{Field: "dataset.yaml:13", Reason: "train.resources.gpus: must not be negative"},
			{Field: "dataset.yaml:14", Reason: `train.resources.memory: "lots" is not a Kubernetes quantity`},
			{Field: "dataset.yaml:15", Reason: `train.resources.executor: "slurm" is not one of auto, process, docker, kubernetes`},
		},
	}, {
		desc: "train block without a model",
		in:   "name: cats\ntask: classification\nformat: imagefolder\ntrain:\n  resources: {gpus: 1}\n",
		want: []events.FieldError{{Field: "dataset.yaml:4", Reason: "train.model: required (framework/name, e.g. torchvision/resnet18)"}},
	}, {
		desc: "two documents",
		in:   "name: cats\ntask: classification\nformat: imagefolder\n---\nname: dogs\n",
		want: []events.FieldError{{Field: "dataset.yaml:5", Reason: "a dataset.yaml holds one document"}},
	}, {
		desc: "empty",
		in:   "# nothing yet\n",
		want: []events.FieldError{{Field: "dataset.yaml", Reason: "empty dataset.yaml (name, task and format are required)"}},
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			s, err := ParseSpec("dataset.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("ParseSpec() = %+v, want an error", s)
			}
			if diff := cmp.Diff(tc.want, SpecProblems(err)); diff != "" {
				t.Errorf("SpecProblems(ParseSpec()) (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

// TestSpecTrainJob builds the job.requested event a job-trigger would from
// a dataset.yaml, and has the events package validate it: the spec's
// model, hyperparameters and resources are what events accepts.
func TestSpecTrainJob(t *testing.T) {
	s, err := ParseSpec("dataset.yaml", []byte(goodSpec))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.TrainModel(), (events.ModelRef{Framework: "torchvision", Name: "resnet18"}); got != want {
		t.Errorf("TrainModel() = %v, want %v", got, want)
	}
	digest := Digest([]byte("{}"))
	job := events.JobRequestedData{
		ID:              events.JobID(digest, s.TrainModel(), s.TrainHyperparameters()),
		Dataset:         events.DatasetRef{Bucket: "datasets", Prefix: "cats/v1/", Digest: digest, Task: s.Task, Format: s.Format},
		Model:           s.TrainModel(),
		Hyperparameters: s.TrainHyperparameters(),
		Resources:       s.TrainResources(),
	}
	e, err := events.New(context.Background(), "test", job)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Validate(e); err != nil {
		t.Errorf("events.Validate(job from dataset.yaml) = %v", err)
	}
	if got := s.TrainHyperparameters().Extra["workers"]; got != 0 {
		t.Errorf("TrainHyperparameters().Extra[workers] = %v, want 0", got)
	}

	none := &Spec{Name: "cats"}
	if got := none.TrainModel(); got != (events.ModelRef{}) {
		t.Errorf("TrainModel() without train = %v, want zero", got)
	}
}

// TestTrainFieldNames keeps dataset.yaml's names of the hyperparameters
// and resources those of the events' JSON (the compiler already keeps the
// fields themselves the same, through the conversion).
func TestTrainFieldNames(t *testing.T) {
	for _, pair := range [][2]reflect.Type{
		{reflect.TypeFor[TrainHyperparameters](), reflect.TypeFor[events.Hyperparameters]()},
		{reflect.TypeFor[TrainResources](), reflect.TypeFor[events.Resources]()},
	} {
		ours, theirs := pair[0], pair[1]
		for i := range ours.NumField() {
			y, _, _ := strings.Cut(ours.Field(i).Tag.Get("yaml"), ",")
			j, _, _ := strings.Cut(theirs.Field(i).Tag.Get("json"), ",")
			if y != j {
				t.Errorf("%s.%s is %q in YAML, %s's JSON calls it %q", ours.Name(), ours.Field(i).Name, y, theirs.Name(), j)
			}
		}
	}
}

func TestSpecComplete(t *testing.T) {
	s := &Spec{Files: 3, Bytes: 100}
	for _, tc := range []struct {
		files int
		bytes int64
		want  bool
	}{{2, 100, false}, {3, 99, false}, {3, 100, true}, {4, 120, true}} {
		if got := s.Complete(tc.files, tc.bytes); got != tc.want {
			t.Errorf("Complete(%d, %d) = %v, want %v", tc.files, tc.bytes, got, tc.want)
		}
	}
	if !(&Spec{}).Complete(0, 0) {
		t.Error("Complete(0, 0) of a spec without files or bytes = false, want true")
	}
}
