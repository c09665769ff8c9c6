package registry

import (
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// good is a valid entry; the cases below break it one way at a time.
const good = `defaults:
  framework: timm
  adapter: timm
  status: ready
  recommended: {epochs: 1, batchSize: 2, learningRate: 0.1}
  references: [https://example.com/card]
models:
  - name: m1
    description: a model
    task: classification
    formats: [imagefolder]
`

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		files map[string]string
		want  string
	}{{
		desc: "unknown field",
		files: map[string]string{"bad.yaml": good + `    colour: blue
`},
		want: "bad.yaml:12: field colour not found in type registry.Model",
	}, {
		desc: "bad task",
		files: map[string]string{"bad.yaml": `defaults:
  framework: timm
  adapter: timm
  status: ready
  recommended: {epochs: 1, batchSize: 2, learningRate: 0.1}
  references: [https://example.com/card]
models:
  - name: m1
    description: a model
    task: detect
    formats: [imagefolder]
`},
		want: "bad.yaml:10: models.0.task: \"detect\" is not one of classification, detection, segmentation, pose, captioning",
	}, {
		desc: "missing framework",
		files: map[string]string{"sub/bad.yaml": `models:
  - name: m1
    adapter: timm
    description: a model
    task: classification
    formats: [imagefolder]
    status: ready
    recommended: {epochs: 1, batchSize: 2, learningRate: 0.1}
    references: [https://example.com/card]
`},
		want: "sub/bad.yaml:2: models.0.framework: required",
	}, {
		desc: "bad default, named once at the defaults",
		files: map[string]string{"bad.yaml": `defaults:
  framework: timm
  adapter: keras
  status: ready
  recommended: {epochs: 1, batchSize: 2, learningRate: 0.1}
  references: [https://example.com/card]
models:
  - {name: m1, description: a, task: classification, formats: [imagefolder]}
  - {name: m2, description: b, task: classification, formats: [imagefolder]}
`},
		want: "bad.yaml:3: defaults.adapter: \"keras\" is not one of torchvision, timm, huggingface, ultralytics, custom",
	}, {
		desc:  "bad format",
		files: map[string]string{"bad.yaml": good[:len(good)-len("imagefolder]\n")] + "voc]\n"},
		want:  "bad.yaml:11: models.0.formats.0: \"voc\" is not one of imagefolder, yolo, coco",
	}, {
		desc: "wrong type",
		files: map[string]string{"bad.yaml": good + `    paramsMillions: many
`},
		want: "bad.yaml:12: models.0.paramsMillions: cannot unmarshal !!str `many` into float64",
	}, {
		desc: "unavailable without its reason",
		files: map[string]string{"bad.yaml": good + `    status: unavailable
`},
		want: "bad.yaml:8: models.0.reason: an unavailable model needs the reason",
	}, {
		desc: "ready with a reason",
		files: map[string]string{"bad.yaml": good + `    reason: not yet
`},
		want: "bad.yaml:12: models.0.reason: a ready model has no reason",
	}, {
		desc: "fixed input without a size",
		files: map[string]string{"bad.yaml": good + `    input: {fixed: true}
`},
		want: "bad.yaml:12: models.0.input.fixed: a fixed input needs its size",
	}, {
		desc: "size and height",
		files: map[string]string{"bad.yaml": good + `    input: {size: 224, height: 256, width: 192}
`},
		want: "bad.yaml:12: models.0.input: size, or height and width, not both",
	}, {
		desc: "variant of another task",
		files: map[string]string{"bad.yaml": good + `    variant: obb
`},
		want: "bad.yaml:12: models.0.variant: task classification has no variants",
	}, {
		desc: "custom model without its source",
		files: map[string]string{"bad.yaml": `defaults:
  framework: yolov7
  adapter: custom
  status: unavailable
  reason: no lock
  recommended: {epochs: 1, batchSize: 2, learningRate: 0.1}
  references: [https://example.com/card]
models:
  - {name: yolov7, description: a, task: detection, formats: [yolo]}
`},
		want: "bad.yaml:9: models.0.source: a custom model needs its source repository",
	}, {
		desc: "no recommended hyperparameters",
		files: map[string]string{"bad.yaml": `models:
  - name: m1
    framework: timm
    adapter: timm
    description: a model
    task: classification
    formats: [imagefolder]
    status: ready
    references: [https://example.com/card]
`},
		want: "bad.yaml:2: models.0.recommended.epochs: required\n" +
			"bad.yaml:2: models.0.recommended.batchSize: required\n" +
			"bad.yaml:2: models.0.recommended.learningRate: required",
	}, {
		desc: "a name in the defaults",
		files: map[string]string{"bad.yaml": `defaults:
  name: m0
` + good[len("defaults:\n"):]},
		want: "bad.yaml:2: defaults.name: belongs to a model, not to the defaults",
	}, {
		desc:  "the same model in two files",
		files: map[string]string{"a.yaml": good, "b.yaml": good},
		want:  "b.yaml: model timm/m1 is also defined in a.yaml",
	}, {
		desc:  "two documents",
		files: map[string]string{"bad.yaml": good + "---\n" + good},
		want:  "bad.yaml:13: a catalog file holds one document",
	}, {
		desc:  "no models",
		files: map[string]string{"bad.yaml": "defaults: {framework: timm}\n"},
		want:  "bad.yaml:1: models: at least one model is required",
	}, {
		desc:  "no files",
		files: map[string]string{"README.md": "# not a catalog\n"},
		want:  "loading the catalog: no *.yaml files",
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, data := range tc.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			_, err := Load(fsys)
			if err == nil {
				t.Fatalf("Load() = nil error, want %q", tc.want)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("Load() error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadMergesDefaults(t *testing.T) {
	c, err := Load(fstest.MapFS{"a.yaml": {Data: []byte(`defaults:
  framework: timm
  adapter: timm
  task: classification
  formats: [imagefolder]
  input: {size: 224}
  recommended: {epochs: 30, batchSize: 32, learningRate: 0.01}
  tags: [timm]
  status: unavailable
  reason: no lock
  references: [https://example.com/catalog]
models:
  - name: m1
    description: inherits everything
  - name: m2
    description: overrides some
    formats: [yolo, coco]
    input: {size: 640, fixed: true}
    recommended: {batchSize: 8}
    tags: [big, timm]
    status: ready
    references: [https://example.com/m2]
`)}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Model{{
		Name: "m1", Framework: "timm", Adapter: "timm", Description: "inherits everything", Task: "classification",
		Formats: []string{"imagefolder"}, Input: Input{Size: 224},
		Recommended: Recommended{Epochs: 30, BatchSize: 32, LearningRate: 0.01},
		Tags:        []string{"timm"}, Status: StatusUnavailable, Reason: "no lock",
		References: []string{"https://example.com/catalog"}, File: "a.yaml",
	}, {
		Name: "m2", Framework: "timm", Adapter: "timm", Description: "overrides some", Task: "classification",
		Formats: []string{"yolo", "coco"}, Input: Input{Size: 640, Fixed: true},
		Recommended: Recommended{Epochs: 30, BatchSize: 8, LearningRate: 0.01},
		Tags:        []string{"timm", "big"}, Status: StatusReady,
		References: []string{"https://example.com/catalog", "https://example.com/m2"}, File: "a.yaml",
	}}
	if diff := cmp.Diff(want, c.Models()); diff != "" {
		t.Errorf("Models() (-want +got):\n%s", diff)
	}
}
