package registry

import (
	"errors"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/events"
)

// fixture is a small catalog for the query tests: its answers do not move
// when the real catalog's data does.
func fixture(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load(fstest.MapFS{
		"a.yaml": {Data: []byte(`defaults:
  framework: timm
  adapter: timm
  task: classification
  formats: [imagefolder]
  input: {size: 224}
  recommended: {epochs: 30, batchSize: 32, learningRate: 0.01}
  status: ready
  references: [https://example.com/card]
models:
  - {name: resnet18, description: A small ResNet., tags: [resnet, cnn, small]}
  - name: vit_base_patch16_224
    description: Vision Transformer at 224 px.
    input: {size: 224, fixed: true}
    tags: [vit, transformer]
  - name: efficientnet_b0
    description: EfficientNet B0, compound scaled.
    tags: [efficientnet, cnn, mobile]
    status: unavailable
    reason: image timm has no lock file yet
`)},
		"b.yaml": {Data: []byte(`defaults:
  framework: ultralytics
  adapter: ultralytics
  formats: [yolo, coco]
  input: {size: 640}
  recommended: {epochs: 100, batchSize: 16, learningRate: 0.01}
  status: ready
  references: [https://example.com/card]
models:
  - {name: yolo11n, description: YOLO11 nano detector., task: detection, tags: [yolo, small]}
  - {name: yolo11n-pose, description: YOLO11 nano keypoints., task: pose, formats: [yolo], tags: [yolo, keypoints]}
  - {name: yolo11n-obb, description: Rotated boxes., task: detection, variant: obb, formats: [yolo], tags: [yolo]}
`)},
		"c.yaml": {Data: []byte(`models:
  - name: vitpose-b
    framework: vitpose
    adapter: custom
    description: Top-down pose with a ViT backbone.
    task: pose
    formats: [coco]
    source: {repository: https://github.com/ViTAE-Transformer/ViTPose, dir: images/frameworks/sources/vitpose}
    input: {height: 256, width: 192, fixed: true}
    recommended: {epochs: 210, batchSize: 64, learningRate: 0.0005}
    status: ready
    references: [https://example.com/card]
`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func refs(ms []Model) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Ref().String())
	}
	return out
}

func TestFilter(t *testing.T) {
	c := fixture(t)
	for _, tc := range []struct {
		desc string
		q    Query
		want []string
	}{
		{"everything", Query{}, []string{"timm/resnet18", "timm/vit_base_patch16_224", "timm/efficientnet_b0", "ultralytics/yolo11n", "ultralytics/yolo11n-pose", "ultralytics/yolo11n-obb", "vitpose/vitpose-b"}},
		{"framework", Query{Framework: "ultralytics"}, []string{"ultralytics/yolo11n", "ultralytics/yolo11n-pose", "ultralytics/yolo11n-obb"}},
		{"task", Query{Task: events.TaskPose}, []string{"ultralytics/yolo11n-pose", "vitpose/vitpose-b"}},
		{"framework and task", Query{Framework: "ultralytics", Task: events.TaskDetection}, []string{"ultralytics/yolo11n", "ultralytics/yolo11n-obb"}},
		{"tag, any case", Query{Tag: "CNN"}, []string{"timm/resnet18", "timm/efficientnet_b0"}},
		{"tag is exact", Query{Tag: "small"}, []string{"timm/resnet18", "ultralytics/yolo11n"}},
		{"a tag asked for in capitals", Query{Tag: "Mobile"}, []string{"timm/efficientnet_b0"}},
		{"text in the name", Query{Text: "YOLO11N-"}, []string{"ultralytics/yolo11n-pose", "ultralytics/yolo11n-obb"}},
		{"text in the description", Query{Text: "rotated"}, []string{"ultralytics/yolo11n-obb"}},
		{"text in a tag", Query{Text: "keypoint"}, []string{"ultralytics/yolo11n-pose"}},
		{"text across fields", Query{Text: "vit"}, []string{"timm/vit_base_patch16_224", "vitpose/vitpose-b"}},
		{"text and task", Query{Text: "vit", Task: events.TaskClassification}, []string{"timm/vit_base_patch16_224"}},
		{"no match", Query{Framework: "timm", Task: events.TaskPose}, []string{}},
		{"unknown framework", Query{Framework: "keras"}, []string{}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, refs(c.Filter(tc.q))); diff != "" {
				t.Errorf("Filter(%+v) (-want +got):\n%s", tc.q, diff)
			}
		})
	}
}

func TestFrameworksAndTasks(t *testing.T) {
	c := fixture(t)
	if diff := cmp.Diff([]string{"timm", "ultralytics", "vitpose"}, c.Frameworks()); diff != "" {
		t.Errorf("Frameworks() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"classification", "detection", "pose"}, c.Tasks()); diff != "" {
		t.Errorf("Tasks() (-want +got):\n%s", diff)
	}
}

func TestLookup(t *testing.T) {
	c := fixture(t)
	m, err := c.Lookup("ultralytics", "yolo11n-obb")
	if err != nil {
		t.Fatal(err)
	}
	if m.Task != events.TaskDetection || m.Variant != "obb" || m.File != "b.yaml" {
		t.Errorf("Lookup(ultralytics, yolo11n-obb) = task %q variant %q file %q", m.Task, m.Variant, m.File)
	}
	for _, ref := range []events.ModelRef{{Framework: "ultralytics", Name: "yolo99"}, {Framework: "timm", Name: "yolo11n"}, {}} {
		if _, err := c.Lookup(ref.Framework, ref.Name); !errors.Is(err, ErrUnknownModel) {
			t.Errorf("Lookup(%q, %q) = %v, want ErrUnknownModel", ref.Framework, ref.Name, err)
		}
	}
}

func TestModelsIsACopy(t *testing.T) {
	c := fixture(t)
	ms := c.Models()
	ms[0].Name = "changed"
	if got := c.Models()[0].Name; got != "resnet18" {
		t.Errorf("Models()[0].Name = %q after a caller changed its copy", got)
	}
}

func TestCheckJob(t *testing.T) {
	c := fixture(t)
	job := func(framework, name, task, format string, imageSize int) events.JobRequestedData {
		return events.JobRequestedData{
			Dataset:         events.DatasetRef{Task: task, Format: format},
			Model:           events.ModelRef{Framework: framework, Name: name},
			Hyperparameters: events.Hyperparameters{Epochs: 1, BatchSize: 1, LearningRate: 0.1, ImageSize: imageSize},
		}
	}
	for _, tc := range []struct {
		desc string
		job  events.JobRequestedData
		want []events.FieldError
	}{{
		desc: "fits",
		job:  job("timm", "resnet18", "classification", "imagefolder", 32),
	}, {
		desc: "a fixed size asked for",
		job:  job("timm", "vit_base_patch16_224", "classification", "imagefolder", 224),
	}, {
		desc: "no size: the model's default",
		job:  job("timm", "vit_base_patch16_224", "classification", "imagefolder", 0),
	}, {
		desc: "unknown framework",
		job:  job("keras", "resnet18", "classification", "imagefolder", 0),
		want: []events.FieldError{{Field: "model.framework", Reason: `no framework "keras" in the catalog (known: timm, ultralytics, vitpose)`}},
	}, {
		desc: "unknown model",
		job:  job("timm", "resnet19", "classification", "imagefolder", 0),
		want: []events.FieldError{{Field: "model.name", Reason: "no model timm/resnet19 in the catalog"}},
	}, {
		desc: "unavailable",
		job:  job("timm", "efficientnet_b0", "classification", "imagefolder", 0),
		want: []events.FieldError{{Field: "model", Reason: "timm/efficientnet_b0 is unavailable: image timm has no lock file yet"}},
	}, {
		desc: "another size than the fixed one",
		job:  job("timm", "vit_base_patch16_224", "classification", "imagefolder", 384),
		want: []events.FieldError{{Field: "hyperparameters.imageSize", Reason: "timm/vit_base_patch16_224 takes 224 px input only, not 384 px"}},
	}, {
		desc: "a size for a model whose config sets height and width",
		job:  job("vitpose", "vitpose-b", "pose", "coco", 256),
		want: []events.FieldError{{Field: "hyperparameters.imageSize", Reason: "vitpose/vitpose-b takes 256×192 px (height×width) input, set by its config; leave imageSize out"}},
	}, {
		desc: "a format the model doesn't take",
		job:  job("ultralytics", "yolo11n-pose", "pose", "coco", 640),
		want: []events.FieldError{{Field: "dataset.format", Reason: "ultralytics/yolo11n-pose takes yolo datasets, not coco"}},
	}, {
		desc: "another task",
		job:  job("ultralytics", "yolo11n-obb", "segmentation", "yolo", 0),
		want: []events.FieldError{{Field: "dataset.task", Reason: "ultralytics/yolo11n-obb is trained for detection (obb), not segmentation"}},
	}, {
		desc: "everything wrong, sorted by field",
		job:  job("timm", "efficientnet_b0", "", "yolo", 0),
		want: []events.FieldError{
			{Field: "dataset.format", Reason: "timm/efficientnet_b0 takes imagefolder datasets, not yolo"},
			{Field: "dataset.task", Reason: "timm/efficientnet_b0 is trained for classification, not none"},
			{Field: "model", Reason: "timm/efficientnet_b0 is unavailable: image timm has no lock file yet"},
		},
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, c.CheckJob(tc.job)); diff != "" {
				t.Errorf("CheckJob(%s) (-want +got):\n%s", tc.job.Model, diff)
			}
		})
	}
}

func TestDefaultsAndAdapterArg(t *testing.T) {
	m := Model{
		Name:         "vit-base-patch16-224",
		AdapterModel: AdapterModel{Scratch: "vit", Pretrained: "google/vit-base-patch16-224"},
		Input:        Input{Size: 224, Fixed: true},
		Recommended:  Recommended{Epochs: 3, BatchSize: 8, LearningRate: 5e-5},
	}
	want := events.Hyperparameters{Epochs: 3, BatchSize: 8, LearningRate: 5e-5, ImageSize: 224}
	if diff := cmp.Diff(want, m.Defaults()); diff != "" {
		t.Errorf("Defaults() (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		am         AdapterModel
		pretrained bool
		want       string
	}{
		{m.AdapterModel, false, "vit"},
		{m.AdapterModel, true, "google/vit-base-patch16-224"},
		{AdapterModel{}, false, "vit-base-patch16-224"},
		{AdapterModel{}, true, "vit-base-patch16-224"},
		{AdapterModel{Scratch: "vit"}, true, "vit"},
	} {
		m.AdapterModel = tc.am
		if got := m.AdapterArg(tc.pretrained); got != tc.want {
			t.Errorf("AdapterArg(%v) with %+v = %q, want %q", tc.pretrained, tc.am, got, tc.want)
		}
	}
}
