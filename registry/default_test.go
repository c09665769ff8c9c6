package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/images/imagespec"
)

// repoRoot is the repository root, from this package's directory.
const repoRoot = ".."

func TestDefaultCatalogCounts(t *testing.T) {
	got := map[string]int{}
	for _, m := range Default().Models() {
		group := m.Framework
		if slices.Contains(m.Tags, "custom") {
			group = "custom" // each in an isolated image of its own
		}
		got[group]++
	}
	// The original plan's models: timm 13, ultralytics 8, HuggingFace 5,
	// custom 4; and the torchvision CPU reference the tests train.
	want := map[string]int{"timm": 13, "ultralytics": 8, "huggingface": 5, "custom": 4, "torchvision": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("models per adapter (-want +got):\n%s", diff)
	}
}

func TestDefaultCatalogPlanModels(t *testing.T) {
	c := Default()
	for _, ref := range []string{
		"timm/resnet18", "timm/resnet34", "timm/resnet50", "timm/resnet101", "timm/vgg16", "timm/vgg19",
		"timm/efficientnet_b0", "timm/efficientnet_b1", "timm/efficientnet_b4", "timm/vit_base_patch16_224",
		"timm/vit_large_patch16_224", "timm/mobilenetv3_large_100", "timm/mobilenetv3_small_100",
		"torchvision/resnet18",
	} {
		framework, name, _ := strings.Cut(ref, "/")
		if _, err := c.Lookup(framework, name); err != nil {
			t.Errorf("Lookup(%s): %v", ref, err)
		}
	}
	hf := map[string]string{}
	for _, m := range c.Filter(Query{Framework: "huggingface"}) {
		hf[m.Architecture] = m.Weights
	}
	wantHF := map[string]string{
		"ViTForImageClassification":        "google/vit-base-patch16-224",
		"DeiTForImageClassification":       "facebook/deit-base-distilled-patch16-224",
		"DetrForObjectDetection":           "facebook/detr-resnet-50",
		"SegformerForSemanticSegmentation": "nvidia/mit-b0",
		"BlipForConditionalGeneration":     "Salesforce/blip-image-captioning-base",
	}
	if diff := cmp.Diff(wantHF, hf); diff != "" {
		t.Errorf("huggingface classes and checkpoints (-want +got):\n%s", diff)
	}
	var custom []string
	for _, m := range c.Models() {
		if slices.Contains(m.Tags, "custom") {
			custom = append(custom, m.Framework)
		}
	}
	slices.Sort(custom)
	if diff := cmp.Diff([]string{"convnext", "paddle", "vitpose", "yolov7"}, custom); diff != "" {
		t.Errorf("custom models' images (-want +got):\n%s", diff)
	}
}

// TestUltralyticsTasks: the eight ultralytics models cover every task
// ultralytics trains.
func TestUltralyticsTasks(t *testing.T) {
	got := map[string]bool{}
	for _, m := range Default().Filter(Query{Framework: "ultralytics"}) {
		got[m.taskName()] = true
	}
	for _, task := range []string{"detection", "segmentation (instance)", "pose", "classification", "detection (obb)"} {
		if !got[task] {
			t.Errorf("no ultralytics model for %s (have %v)", task, got)
		}
	}
}

// TestEntriesNameImageSpecs loads images/frameworks as the image builder
// does: every entry's image is a spec there, and the spec serves the
// entry's framework.
func TestEntriesNameImageSpecs(t *testing.T) {
	specs, err := imagespec.LoadDir(filepath.Join(repoRoot, "images", "frameworks"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Default().Models() {
		s, ok := specs[m.ImageSpec()]
		if !ok {
			t.Errorf("%s (%s): no image spec %q in images/frameworks", m.Ref(), m.File, m.ImageSpec())
			continue
		}
		if s.Framework != m.Framework {
			t.Errorf("%s: image spec %s serves framework %q", m.Ref(), s.Name, s.Framework)
		}
	}
}

// TestSourceLayers: a custom model's image takes the user's copy of its
// repository from the entry's source.dir as a layer (a dir layer of the
// source's parent with the tree's folder included), or the entry is
// unavailable and says that its image "has no layer for" it.
func TestSourceLayers(t *testing.T) {
	specs, err := imagespec.LoadDir(filepath.Join(repoRoot, "images", "frameworks"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Default().Models() {
		if m.Source == nil {
			continue
		}
		s := specs[m.ImageSpec()]
		if s == nil {
			continue // TestEntriesNameImageSpecs reports it
		}
		want, err := filepath.Abs(filepath.Join(repoRoot, filepath.FromSlash(m.Source.Dir)))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, l := range s.Layers {
			if l.Dir == nil {
				continue
			}
			parent, err := filepath.Abs(s.Resolve(l.Dir.Src))
			if err != nil {
				t.Fatal(err)
			}
			if parent == filepath.Dir(want) && slices.Contains(l.Dir.Include, filepath.Base(want)+"/**") {
				found = true
			}
		}
		switch {
		case found && m.Ready():
		case found && !strings.Contains(m.Reason, m.Source.Dir):
			t.Errorf("%s is unavailable, and its reason does not say where its source goes (%s): %s", m.Ref(), m.Source.Dir, m.Reason)
		case !found && (m.Ready() || !strings.Contains(m.Reason, "has no layer for")):
			t.Errorf("%s: image spec %s has no layer taking %s, and the entry does not say so (status %s: %s)", m.Ref(), s.Name, m.Source.Dir, m.Status, m.Reason)
		}
	}
}

// TestEntriesNameAdapters: every adapter the catalog names is an SDK
// adapter file, registered in the SDK's run entry point.
func TestEntriesNameAdapters(t *testing.T) {
	adapters := filepath.Join(repoRoot, "images", "python", "vp_sdk", "adapters")
	run, err := os.ReadFile(filepath.Join(adapters, "..", "run.py"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range Adapters {
		if _, err := os.Stat(filepath.Join(adapters, a+"_adapter.py")); err != nil {
			t.Errorf("adapter %s: %v", a, err)
		}
		if !strings.Contains(string(run), `"`+a+`": "vp_sdk.adapters.`+a+`_adapter:`) {
			t.Errorf("adapter %s is not registered in vp_sdk/run.py", a)
		}
	}
	for _, m := range Default().Models() {
		if !slices.Contains(Adapters, m.Adapter) {
			t.Errorf("%s: adapter %q", m.Ref(), m.Adapter)
		}
	}
}

var lockRE = regexp.MustCompile(`image (\S+) has no lock file yet \((\S+),`)

// TestStatusFollowsLocks: a model whose image lacks a lock file is
// unavailable and says which, and a reason naming a missing lock goes stale
// the moment the lock is committed.
func TestStatusFollowsLocks(t *testing.T) {
	specs, err := imagespec.LoadDir(filepath.Join(repoRoot, "images", "frameworks"))
	if err != nil {
		t.Fatal(err)
	}
	missing := map[string][]string{} // spec -> missing locks, relative to the repository root
	for name, s := range specs {
		for _, l := range s.Layers {
			if l.Wheels == nil {
				continue
			}
			p := s.Resolve(l.Wheels.Lock)
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				rel, err := filepath.Rel(repoRoot, p)
				if err != nil {
					t.Fatal(err)
				}
				missing[name] = append(missing[name], filepath.ToSlash(rel))
			}
		}
	}
	for _, m := range Default().Models() {
		img := m.ImageSpec()
		gone := missing[img]
		switch {
		case len(gone) > 0 && m.Ready():
			t.Errorf("%s is ready, but image %s has no lock file %s", m.Ref(), img, gone[0])
		case len(gone) > 0 && !m.Ready() && !strings.Contains(m.Reason, "image "+img+" has no lock file yet ("+gone[0]+","):
			t.Errorf("%s: the reason does not say that image %s has no lock file %s: %s", m.Ref(), img, gone[0], m.Reason)
		}
		if sm := lockRE.FindStringSubmatch(m.Reason); sm != nil && !slices.Contains(missing[sm[1]], sm[2]) {
			t.Errorf("%s: the reason says %s has no lock file %s, but it has: update the entry", m.Ref(), sm[1], sm[2])
		}
	}
}

// TestDefaultsPassJobValidation: a job made from each model's defaults is a
// valid job.requested event and passes CheckJob but for the model's status.
func TestDefaultsPassJobValidation(t *testing.T) {
	for _, m := range Default().Models() {
		t.Run(m.Ref().String(), func(t *testing.T) {
			j := events.JobRequestedData{
				Dataset: events.DatasetRef{
					Bucket: "datasets", Prefix: "cats/v1/", Digest: "sha256:" + strings.Repeat("ab", 32),
					Task: m.Task, Format: m.Formats[0],
				},
				Model:           m.Ref(),
				Hyperparameters: m.Defaults(),
				Resources:       events.Resources{GPUs: 1},
			}
			j.ID = events.JobID(j.Dataset.Digest, j.Model, j.Hyperparameters)
			e, err := events.New(context.Background(), "/registry/test", j)
			switch {
			case err != nil:
				t.Fatalf("events.New: %v", err)
			default:
				if err := events.Validate(e); err != nil {
					t.Errorf("events.Validate: %v", err)
				}
			}
			var want []events.FieldError
			if !m.Ready() {
				want = []events.FieldError{{Field: "model", Reason: m.Ref().String() + " is unavailable: " + m.Reason}}
			}
			if diff := cmp.Diff(want, Default().CheckJob(j)); diff != "" {
				t.Errorf("CheckJob(defaults) (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEntriesAreComplete: the fields every entry of the shipped catalog
// carries, beyond what Load requires of any catalog.
func TestEntriesAreComplete(t *testing.T) {
	for _, m := range Default().Models() {
		if m.Architecture == "" || m.License == "" || len(m.Tags) == 0 {
			t.Errorf("%s (%s): architecture %q, license %q, tags %v", m.Ref(), m.File, m.Architecture, m.License, m.Tags)
		}
		if m.Input.Size == 0 && m.Input.Height == 0 {
			t.Errorf("%s: no input size", m.Ref())
		}
		if m.Source == nil && m.Weights == "" {
			t.Errorf("%s: no pretrained weights named", m.Ref())
		}
	}
}

func TestDefaultIsLoadedOnce(t *testing.T) {
	a, b := Default(), Default()
	if a != b {
		t.Error("Default() loaded the catalog twice")
	}
}
