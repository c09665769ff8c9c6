package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/dataset/datasettest"
)

// A validate case makes a good dataset in a directory, breaks it, and
// expects exactly these problems (and, when given, this summary).
type validateCase struct {
	desc   string
	task   string // default: the test's
	change func(t *testing.T, dir string)
	want   []events.FieldError
	sum    *Summary
}

func runValidate(t *testing.T, format, task string, make func(t *testing.T, dir string), cases []validateCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			make(t, dir)
			if tc.change != nil {
				tc.change(t, dir)
			}
			task := task
			if tc.task != "" {
				task = tc.task
			}
			sum, problems, err := Validate(os.DirFS(dir), task, format)
			if err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if diff := cmp.Diff(tc.want, problems); diff != "" {
				t.Errorf("Validate() problems (-want +got):\n%s", diff)
			}
			if tc.sum != nil {
				tc.sum.Files, tc.sum.Bytes = sum.Files, sum.Bytes // checked in TestValidateCounts
				if diff := cmp.Diff(*tc.sum, sum); diff != "" {
					t.Errorf("Validate() summary (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func write(t *testing.T, dir, rel, content string) {
	t.Helper()
	datasettest.WriteFile(t, dir, rel, []byte(content))
}

func remove(t *testing.T, dir string, rels ...string) {
	t.Helper()
	for _, rel := range rels {
		if err := os.RemoveAll(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			t.Fatal(err)
		}
	}
}

func mkdir(t *testing.T, dir, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
}

// editJSON rewrites a JSON file through fn.
func editJSON(t *testing.T, dir, rel string, fn func(doc map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	fn(doc)
	b, err = json.MarshalIndent(doc, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, rel, string(b))
}

// item is element i of the array at key of a decoded JSON document.
func item(doc map[string]any, key string, i int) map[string]any {
	return doc[key].([]any)[i].(map[string]any)
}

func png(t *testing.T) string { return string(datasettest.PNG(t, 4, color.Gray{Y: 128})) }

func TestValidateImageFolder(t *testing.T) {
	make := func(t *testing.T, dir string) { datasettest.MakeImageFolder(t, dir, 4, 8) }
	runValidate(t, "imagefolder", "classification", make, []validateCase{{
		desc: "good",
		sum:  &Summary{Classes: []string{"cat", "dog"}, Train: 8, Val: 4},
	}, {
		desc: "allowed extras: dataset.yaml, manifest.json, README, hidden files, a test split, upper-case extensions",
		change: func(t *testing.T, dir string) {
			write(t, dir, "dataset.yaml", "name: pets\ntask: classification\nformat: imagefolder\nclasses: [dog, cat]\n")
			write(t, dir, "manifest.json", "{}")
			write(t, dir, "README.md", "# pets\n")
			write(t, dir, "train/cat/.DS_Store", "x")
			write(t, dir, ".git/config", "x")
			write(t, dir, "train/dog/nested/deeper/x.JPEG", "jpeg")
			write(t, dir, "test/cat/a.webp", "webp")
			write(t, dir, "test/dog/b.tif", "tiff")
		},
		sum: &Summary{Classes: []string{"cat", "dog"}, Train: 9, Val: 4, Test: 2},
	}, {
		desc:   "one class",
		change: func(t *testing.T, dir string) { remove(t, dir, "train/dog", "val/dog") },
		want:   []events.FieldError{{Field: "train/", Reason: "one class (cat): a classifier needs at least two"}},
	}, {
		desc:   "no train split",
		change: func(t *testing.T, dir string) { remove(t, dir, "train") },
		want:   []events.FieldError{{Field: "train/", Reason: "required: one folder of images per class, train/<class>/<image>"}},
	}, {
		desc: "empty train split",
		change: func(t *testing.T, dir string) {
			remove(t, dir, "train", "val")
			mkdir(t, dir, "train")
		},
		want: []events.FieldError{{Field: "train/", Reason: "no class folders: put each class's images in train/<class>/"}},
	}, {
		desc: "empty class, val lacking it, val class not in train",
		change: func(t *testing.T, dir string) {
			mkdir(t, dir, "train/bird")
			write(t, dir, "val/fish/0.png", png(t))
		},
		want: []events.FieldError{
			{Field: "train/bird/", Reason: "no images: an empty class cannot be trained"},
			{Field: "val/", Reason: "lacks class bird, which train/ has (every split needs the same classes)"},
			{Field: "val/fish/", Reason: "class fish is not in train/ (every split needs the same classes)"},
		},
	}, {
		desc: "files that are not images or not in a class folder",
		change: func(t *testing.T, dir string) {
			write(t, dir, "train/cat/notes.txt", "x")
			write(t, dir, "train/cat/anim.GIF", "gif")
			write(t, dir, "train/cat/empty.png", "")
			write(t, dir, "train/stray.png", png(t))
			write(t, dir, "data.yaml", "names: [cat]\n")
			write(t, dir, "labels/x.txt", "0 0.5 0.5 1 1\n")
			mkdir(t, dir, "train/.ipynb_checkpoints")
			write(t, dir, "train/.ipynb_checkpoints/x.png", png(t))
		},
		want: []events.FieldError{
			{Field: "train/stray.png", Reason: "images belong in a class folder, train/<class>/stray.png"},
			{Field: "train/.ipynb_checkpoints/", Reason: "a hidden folder would be taken for a class: remove it"},
			{Field: "train/cat/anim.GIF", Reason: "GIF is not read by torchvision's ImageFolder: convert it to PNG"},
			{Field: "train/cat/empty.png", Reason: "empty file"},
			{Field: "train/cat/notes.txt", Reason: "not an image (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp)"},
			{Field: "data.yaml", Reason: "not part of the imagefolder layout (train/<class>/<image>, val/<class>/<image>)"},
			{Field: "labels/x.txt", Reason: "not part of the imagefolder layout (train/<class>/<image>, val/<class>/<image>)"},
		},
	}, {
		desc: "dataset.yaml that does not describe the data",
		change: func(t *testing.T, dir string) {
			write(t, dir, "dataset.yaml", "name: pets\ntask: classification\nformat: imagefolder\nfiles: 99\nbytes: 7\nclasses: [cat, bird]\n")
		},
		want: []events.FieldError{
			{Field: "dataset.yaml:4", Reason: "files: 99 data files declared, 12 found"},
			{Field: "dataset.yaml:5", Reason: "bytes: 7 bytes of data files declared, 3011 found"},
			{Field: "dataset.yaml:6", Reason: `classes: "bird" has no folder in train/`},
			{Field: "dataset.yaml:6", Reason: "classes: train/dog/ is not listed"},
		},
	}, {
		desc: "dataset.yaml that does not parse",
		change: func(t *testing.T, dir string) {
			write(t, dir, "dataset.yaml", "name: pets\ntask: classification\nformat: imagefolder\nclass: [cat]\n")
		},
		want: []events.FieldError{{Field: "dataset.yaml:4", Reason: "field class not found in type dataset.Spec"}},
	}})
}

func TestValidateYOLO(t *testing.T) {
	boxes := func(t *testing.T, dir string) { datasettest.MakeYOLO(t, dir, datasettest.Boxes, 4, 16) }
	runValidate(t, "yolo", "detection", boxes, []validateCase{{
		desc: "good",
		sum:  &Summary{Classes: []string{"cat", "dog"}, Train: 4, Val: 2, Objects: 6},
	}, {
		desc: "background images, an empty label, a names map, a label cache, polygons for detection",
		change: func(t *testing.T, dir string) {
			write(t, dir, "data.yaml", "path: .\ntrain: images/train\nval: [images/val]\nnames:\n  0: cat\n  1: dog\n")
			remove(t, dir, "labels/train/train_001.txt")
			write(t, dir, "labels/train/train_002.txt", "\n")
			write(t, dir, "labels/train.cache", "cache")
			write(t, dir, "labels/val/val_000.txt", "1 0.1 0.1 0.9 0.1 0.5 0.9\n0 0.5 0.5 0.2 0.2\n")
		},
		sum: &Summary{Classes: []string{"cat", "dog"}, Train: 4, Val: 2, Objects: 5, Background: 2},
	}, {
		desc: "bad label lines",
		change: func(t *testing.T, dir string) {
			write(t, dir, "labels/train/train_000.txt", "0 0.5 0.5 0.2 0.2\n\n7 0.5 0.5 0.2 0.2\n-1 0.5 abc 0.1 0.1\n1 1.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\nx 0.5 0.5 0.2 0.2\n")
		},
		want: []events.FieldError{
			{Field: "labels/train/train_000.txt:3", Reason: "class 7 is not below nc=2 (names has 2 entries)"},
			{Field: "labels/train/train_000.txt:4", Reason: `class -1 is negative; cy "abc" is not a number`},
			{Field: "labels/train/train_000.txt:5", Reason: "cx 1.5 is outside [0, 1] (coordinates are fractions of the image size)"},
			{Field: "labels/train/train_000.txt:6", Reason: "want class cx cy w h (or class and polygon points), got 4 values"},
			{Field: "labels/train/train_000.txt:7", Reason: `class "x" is not an integer`},
		},
	}, {
		desc: "labels without images",
		change: func(t *testing.T, dir string) {
			write(t, dir, "labels/train/ghost.txt", "0 0.5 0.5 0.2 0.2\n")
			write(t, dir, "images/extra/x.png", png(t))
			write(t, dir, "labels/extra/x.txt", "0 0.5 0.5 0.2 0.2\n")
		},
		want: []events.FieldError{
			{Field: "labels/train/ghost.txt", Reason: "no image for this label (looked for images/train/ghost.<bmp|dng|jpeg|jpg|mpo|png|tif|tiff|webp|pfm>)"},
			{Field: "images/extra/x.png", Reason: "not part of the yolo layout (data.yaml, the image folders it names and their labels/ folders)"},
			{Field: "labels/extra/x.txt", Reason: "not part of the yolo layout (data.yaml, the image folders it names and their labels/ folders)"},
		},
	}, {
		desc: "bad data.yaml",
		change: func(t *testing.T, dir string) {
			write(t, dir, "data.yaml", "train: images/train\ntest: [images/test, /data/test, ../x]\nnc: 3\nnames: [cat, dog]\n")
		},
		want: []events.FieldError{
			{Field: "data.yaml:3", Reason: "nc is 3, names has 2 entries"},
			{Field: "data.yaml", Reason: "val: required (the val images: a folder such as images/val; val may name the train folder)"},
			{Field: "data.yaml:2", Reason: "test: folder images/test is not in the dataset"},
			{Field: "data.yaml:2", Reason: `test: "/data/test" is not a folder inside the dataset`},
			{Field: "data.yaml:2", Reason: "test: folder x is not in the dataset"},
			{Field: "images/val/val_000.png", Reason: "not part of the yolo layout (data.yaml, the image folders it names and their labels/ folders)"},
			{Field: "images/val/val_001.png", Reason: "not part of the yolo layout (data.yaml, the image folders it names and their labels/ folders)"},
			{Field: "labels/val/val_000.txt", Reason: "not part of the yolo layout (data.yaml, the image folders it names and their labels/ folders)"},
			{Field: "labels/val/val_001.txt", Reason: "not part of the yolo layout (data.yaml, the image folders it names and their labels/ folders)"},
		},
	}, {
		desc: "Roboflow's layout: ../ paths, <split>/images and <split>/labels",
		change: func(t *testing.T, dir string) {
			remove(t, dir, "images", "labels")
			write(t, dir, "data.yaml", "train: ../train/images\nval: ../valid/images\nnc: 2\nnames: ['cat', 'dog']\n")
			write(t, dir, "train/images/a.jpg", "jpeg")
			write(t, dir, "train/labels/a.txt", "1 0.5 0.5 0.2 0.2\n")
			write(t, dir, "valid/images/b.jpg", "jpeg")
			write(t, dir, "valid/labels/b.txt", "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n")
		},
		sum: &Summary{Classes: []string{"cat", "dog"}, Train: 1, Val: 1, Objects: 3},
	}, {
		desc: "names map with a gap",
		change: func(t *testing.T, dir string) {
			write(t, dir, "data.yaml", "train: images/train\nval: images/val\nnames:\n  0: cat\n  2: dog\n")
		},
		want: []events.FieldError{{Field: "data.yaml:4", Reason: "names: index 1 is missing (want indexes 0 to 1)"}},
	}, {
		desc: "absolute path",
		change: func(t *testing.T, dir string) {
			write(t, dir, "data.yaml", "path: /home/me/pets\ntrain: images/train\nval: images/val\nnames: [cat, dog]\n")
		},
		want: []events.FieldError{{Field: "data.yaml:1", Reason: `path: "/home/me/pets" is not a folder inside the dataset: leave path out so that the folders are found next to data.yaml`}},
	}, {
		desc:   "no data.yaml",
		change: func(t *testing.T, dir string) { remove(t, dir, "data.yaml") },
		want:   []events.FieldError{{Field: "data.yaml", Reason: "required: the class names (names) and the image folders of the splits (train, val)"}},
	}, {
		desc:   "data.yaml that is not YAML",
		change: func(t *testing.T, dir string) { write(t, dir, "data.yaml", "names: [cat\n") },
		want:   []events.FieldError{{Field: "data.yaml:1", Reason: "not valid YAML: did not find expected ',' or ']'"}},
	}, {
		desc:   "empty data.yaml",
		change: func(t *testing.T, dir string) { write(t, dir, "data.yaml", "# to do\n") },
		want:   []events.FieldError{{Field: "data.yaml", Reason: "want a mapping with names, train and val"}},
	}, {
		desc: "an image list file",
		change: func(t *testing.T, dir string) {
			write(t, dir, "data.yaml", "train: train.txt\nval: images/val\nnames: [cat, dog]\n")
			write(t, dir, "train.txt", "./images/train/train_000.png\nimages/train/train_001.png\n./images/train/missing.png\n\n./labels/train/train_002.txt\n")
		},
		want: []events.FieldError{
			{Field: "train.txt:2", Reason: `"images/train/train_001.png": image paths in a list start with ./ (relative to the dataset)`},
			{Field: "train.txt:3", Reason: "images/train/missing.png is not in the dataset"},
			{Field: "train.txt:5", Reason: "labels/train/train_002.txt is not an image (.bmp .dng .jpeg .jpg .mpo .png .tif .tiff .webp .pfm)"},
			{Field: "labels/train/train_001.txt", Reason: "its image images/train/train_001.png is in no split of data.yaml"},
			{Field: "labels/train/train_002.txt", Reason: "its image images/train/train_002.png is in no split of data.yaml"},
			{Field: "labels/train/train_003.txt", Reason: "its image images/train/train_003.png is in no split of data.yaml"},
			{Field: "images/train/train_001.png", Reason: "not part of the yolo layout (data.yaml, the image folders it names and their labels/ folders)"},
			{Field: "images/train/train_002.png", Reason: "not part of the yolo layout (data.yaml, the image folders it names and their labels/ folders)"},
			{Field: "images/train/train_003.png", Reason: "not part of the yolo layout (data.yaml, the image folders it names and their labels/ folders)"},
		},
	}, {
		desc: "labels next to images (no images/ folder)",
		change: func(t *testing.T, dir string) {
			remove(t, dir, "images", "labels")
			write(t, dir, "data.yaml", "train: train\nval: train\nnames: [cat, dog]\n")
			write(t, dir, "train/a.jpg", "jpeg")
			write(t, dir, "train/a.txt", "1 0.5 0.5 0.2 0.2\n")
			write(t, dir, "train/b.txt", "1 0.5 0.5 0.2 0.2\n")
			write(t, dir, "train/c.json", "{}")
		},
		want: []events.FieldError{
			{Field: "train/c.json", Reason: "not an image (.bmp .dng .jpeg .jpg .mpo .png .tif .tiff .webp .pfm)"},
			{Field: "train/b.txt", Reason: "no image for this label (looked for train/b.<bmp|dng|jpeg|jpg|mpo|png|tif|tiff|webp|pfm>)"},
		},
		sum: &Summary{Classes: []string{"cat", "dog"}, Train: 1, Val: 1, Objects: 1},
	}, {
		desc: "segmentation needs polygons",
		task: "segmentation",
		change: func(t *testing.T, dir string) {
			write(t, dir, "labels/val/val_001.txt", "1 0.1 0.1 0.9 0.1 0.5\n0 0.1 0.1 0.9 0.1 0.5 0.9\n")
			remove(t, dir, "labels/train")
		},
		want: []events.FieldError{
			{Field: "labels/val/val_000.txt:1", Reason: "want class and a polygon of at least 3 points x y, got 5 values"},
			{Field: "labels/val/val_001.txt:1", Reason: "want class and a polygon of at least 3 points x y, got 6 values"},
		},
	}})

	keypoints := func(t *testing.T, dir string) { datasettest.MakeYOLO(t, dir, datasettest.Keypoints, 4, 16) }
	runValidate(t, "yolo", "pose", keypoints, []validateCase{{
		desc: "good pose",
		sum:  &Summary{Classes: []string{"cat", "dog"}, Train: 4, Val: 2, Objects: 6},
	}, {
		desc: "bad keypoints",
		change: func(t *testing.T, dir string) {
			write(t, dir, "labels/train/train_000.txt", "0 0.5 0.5 0.2 0.2 0.1 0.1 2 0.2 0.2 3 0.3 0.3 2 0.4 0.4 2\n0 0.5 0.5 0.2 0.2 0.1 0.1 2\n0 0.5 0.5 0.2 0.2 0.1 0.1 2 0.2 1.2 1 0.3 0.3 2 0.4 0.4 0\n")
		},
		want: []events.FieldError{
			{Field: "labels/train/train_000.txt:1", Reason: "keypoint 2 visibility 3 is outside [0, 2] (0 not labelled, 1 hidden, 2 visible)"},
			{Field: "labels/train/train_000.txt:2", Reason: "want class cx cy w h and 4 keypoints of 3 values (17 values), got 8"},
			{Field: "labels/train/train_000.txt:3", Reason: "keypoint 2 y 1.2 is outside [0, 1] (coordinates are fractions of the image size)"},
		},
	}, {
		desc: "pose without kpt_shape",
		change: func(t *testing.T, dir string) {
			write(t, dir, "data.yaml", "train: images/train\nval: images/val\nnames: [cat, dog]\n")
		},
		want: []events.FieldError{{Field: "data.yaml", Reason: "kpt_shape: required for pose ([keypoints, 2 or 3], e.g. [17, 3])"}},
	}})

	polygons := func(t *testing.T, dir string) { datasettest.MakeYOLO(t, dir, datasettest.Polygons, 2, 16) }
	runValidate(t, "yolo", "segmentation", polygons, []validateCase{{
		desc: "good segmentation",
		sum:  &Summary{Classes: []string{"cat", "dog"}, Train: 2, Val: 1, Objects: 3},
	}})
}

func TestValidateCOCOCaptions(t *testing.T) {
	make := func(t *testing.T, dir string) { datasettest.MakeCaptions(t, dir, 4, 16) }
	const train = "annotations/captions_train.json"
	runValidate(t, "coco", "captioning", make, []validateCase{{
		desc: "good: no categories, two captions an image",
		sum:  &Summary{Train: 4, Val: 2, Objects: 12},
	}, {
		desc: "a caption missing, a blank one, an unknown image",
		change: func(t *testing.T, dir string) {
			editJSON(t, dir, train, func(doc map[string]any) {
				delete(item(doc, "annotations", 0), "caption")
				item(doc, "annotations", 1)["caption"] = "  "
				item(doc, "annotations", 2)["image_id"] = 99
			})
		},
		want: []events.FieldError{
			{Field: train, Reason: "annotations[0].caption: required (the image's caption, text)"},
			{Field: train, Reason: "annotations[1].caption: required (the image's caption, text)"},
			{Field: train, Reason: "annotations[2].image_id 99 is not an image"},
		},
	}, {
		desc: "instances files are not read for captioning",
		change: func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, train), filepath.Join(dir, "annotations/instances_train.json")); err != nil {
				t.Fatal(err)
			}
		},
		want: []events.FieldError{
			{Field: "annotations/instances_train.json", Reason: "not read: the annotation files are annotations/captions_<split>.json for the splits train, val, test"},
			{Field: train, Reason: "required: the train split's images and their captions"},
			// no captions file lists the train images
			{Field: "images/train/train_000.png", Reason: "not part of the coco layout (annotations/captions_<split>.json and images/<split>/)"},
			{Field: "images/train/train_001.png", Reason: "not part of the coco layout (annotations/captions_<split>.json and images/<split>/)"},
			{Field: "images/train/train_002.png", Reason: "not part of the coco layout (annotations/captions_<split>.json and images/<split>/)"},
			{Field: "images/train/train_003.png", Reason: "not part of the coco layout (annotations/captions_<split>.json and images/<split>/)"},
		},
	}})
}

func TestValidateCOCO(t *testing.T) {
	make := func(t *testing.T, dir string) { datasettest.MakeCOCO(t, dir, 4, 16) }
	const train = "annotations/instances_train.json"
	runValidate(t, "coco", "detection", make, []validateCase{{
		desc: "good",
		sum:  &Summary{Classes: []string{"cat", "dog"}, Train: 4, Val: 2, Objects: 6},
	}, {
		desc: "good for segmentation, images in <split>/, categories out of order, a background image, unknown keys",
		task: "segmentation",
		change: func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "images/val"), filepath.Join(dir, "val")); err != nil {
				t.Fatal(err)
			}
			editJSON(t, dir, train, func(doc map[string]any) {
				doc["info"] = map[string]any{"year": 2024, "nested": []any{1, []any{2}}}
				doc["categories"] = []any{map[string]any{"id": 2, "name": "dog"}, map[string]any{"id": 1, "name": "cat", "supercategory": "animal"}}
				doc["annotations"] = doc["annotations"].([]any)[1:]
			})
			editJSON(t, dir, "annotations/instances_val.json", func(doc map[string]any) {
				item(doc, "annotations", 0)["iscrowd"] = 1
				item(doc, "annotations", 0)["segmentation"] = map[string]any{"counts": "abc", "size": []any{16, 16}}
			})
		},
		sum: &Summary{Classes: []string{"cat", "dog"}, Train: 4, Val: 2, Objects: 5, Background: 1},
	}, {
		desc: "broken references, ids and boxes",
		change: func(t *testing.T, dir string) {
			editJSON(t, dir, train, func(doc map[string]any) {
				item(doc, "annotations", 0)["bbox"] = []any{1, 2, -3}
				item(doc, "annotations", 1)["image_id"] = 42
				item(doc, "annotations", 2)["category_id"] = 99
				item(doc, "annotations", 3)["id"] = 1
				delete(item(doc, "images", 1), "width")
				item(doc, "images", 2)["file_name"] = "nope.png"
				item(doc, "images", 3)["id"] = "four"
				doc["categories"] = append(doc["categories"].([]any), map[string]any{"id": 1, "name": "bird"}, map[string]any{"id": 3, "name": "cat"})
			})
		},
		// In file order: editJSON writes the keys sorted.
		want: []events.FieldError{
			{Field: train, Reason: "annotations[0].bbox [1 2 -3]: want 4 non-negative numbers (x, y, width, height in pixels)"},
			{Field: train, Reason: "annotations[3].id 1 is also annotations[0].id"},
			{Field: train, Reason: "categories[2].id 1 is also categories[0].id"},
			{Field: train, Reason: `categories[3].name "cat" is also categories[0].name`},
			{Field: train, Reason: "images[1]: width and height are required, above 0 (labels are converted to fractions of them)"},
			{Field: train, Reason: `images[2].file_name "nope.png" is not in images/train/`},
			{Field: train, Reason: "images[3].id: want an integer, got string"},
			{Field: train, Reason: "annotations[1].image_id 42 is not an image"},
			{Field: train, Reason: "annotations[2].category_id 99 is not a category"},
			{Field: train, Reason: "annotations[3].image_id 4 is not an image"},
			{Field: "images/train/train_002.png", Reason: "not listed in annotations/instances_train.json's images"},
			{Field: "images/train/train_003.png", Reason: "not listed in annotations/instances_train.json's images"},
			{Field: "annotations/instances_val.json", Reason: "categories differ from annotations/instances_train.json's: every split needs the same categories"},
		},
	}, {
		desc: "not JSON",
		change: func(t *testing.T, dir string) {
			write(t, dir, train, "{\n  \"images\": [\n  }\n")
		},
		want: []events.FieldError{{Field: train + ":3", Reason: "not valid JSON: invalid character '}' looking for beginning of value"}},
	}, {
		desc: "cut short, wrong shapes",
		change: func(t *testing.T, dir string) {
			write(t, dir, train, `{"images": {"id": 1}, "annotations": [1, {"id": 2}], "categories": [`)
		},
		want: []events.FieldError{
			{Field: train, Reason: "images: want an array"},
			{Field: train, Reason: "annotations[0]: want an object, got number"},
			{Field: train, Reason: "annotations[1].image_id: required"},
			{Field: train, Reason: "annotations[1].category_id: required"},
			{Field: train, Reason: "annotations[1].bbox: required ([x, y, width, height] in pixels)"},
			{Field: train, Reason: "not valid JSON: the file ends early"},
		},
	}, {
		desc: "missing arrays, no categories",
		change: func(t *testing.T, dir string) {
			write(t, dir, train, `{"images": [], "categories": []}`)
			remove(t, dir, "images/train")
		},
		want: []events.FieldError{
			{Field: train, Reason: "no image folder for split train (images/train/ or train/)"},
			{Field: train, Reason: "annotations: required (an array)"},
			{Field: train, Reason: "categories: none (a dataset needs at least one)"},
		},
	}, {
		desc: "no train annotations, another annotation file, val with other categories, no val images",
		change: func(t *testing.T, dir string) {
			remove(t, dir, train, "images/train")
			write(t, dir, "annotations/captions_train.json", "{}")
			write(t, dir, "annotations/instances_train2017.json", "{}")
			if err := os.Rename(filepath.Join(dir, "images/val"), filepath.Join(dir, "images/validation")); err != nil {
				t.Fatal(err)
			}
			write(t, dir, "notes.md", "x")
		},
		want: []events.FieldError{
			{Field: "annotations/captions_train.json", Reason: "not read: the annotation files are annotations/instances_<split>.json for the splits train, val, test"},
			{Field: "annotations/instances_train2017.json", Reason: "not read: the annotation files are annotations/instances_<split>.json for the splits train, val, test"},
			{Field: train, Reason: "required: the train split's images, annotations and categories"},
			{Field: "annotations/instances_val.json", Reason: "no image folder for split val (images/val/ or val/)"},
			{Field: "images/validation/val_000.png", Reason: "not part of the coco layout (annotations/instances_<split>.json and images/<split>/)"},
			{Field: "images/validation/val_001.png", Reason: "not part of the coco layout (annotations/instances_<split>.json and images/<split>/)"},
			{Field: "notes.md", Reason: "not part of the coco layout (annotations/instances_<split>.json and images/<split>/)"},
		},
	}, {
		desc: "splits with different categories",
		change: func(t *testing.T, dir string) {
			editJSON(t, dir, "annotations/instances_val.json", func(doc map[string]any) {
				item(doc, "categories", 1)["name"] = "wolf"
			})
		},
		want: []events.FieldError{{Field: "annotations/instances_val.json", Reason: "categories differ from annotations/instances_train.json's: every split needs the same categories"}},
	}, {
		desc: "segmentation without polygons",
		task: "segmentation",
		change: func(t *testing.T, dir string) {
			editJSON(t, dir, train, func(doc map[string]any) {
				delete(item(doc, "annotations", 0), "segmentation")
				item(doc, "annotations", 1)["segmentation"] = []any{[]any{1, 2, 3, 4}}
				item(doc, "annotations", 2)["segmentation"] = map[string]any{"counts": "x", "size": []any{16, 16}}
			})
		},
		want: []events.FieldError{
			{Field: train, Reason: "annotations[0].segmentation: required for a segmentation dataset"},
			{Field: train, Reason: "annotations[1].segmentation: polygon 0 has 4 numbers: want x y pairs, at least 3 points"},
			{Field: train, Reason: "annotations[2].segmentation: want polygons ([[x1, y1, x2, y2, x3, y3, ...], ...] in pixels), or with iscrowd 1 an RLE object {counts, size}"},
		},
	}, {
		desc: "dataset.yaml classes in another order than the categories",
		change: func(t *testing.T, dir string) {
			write(t, dir, "dataset.yaml", "name: pets\ntask: detection\nformat: coco\nclasses: [dog, cat]\n")
		},
		want: []events.FieldError{{Field: "dataset.yaml:4", Reason: "classes: dataset.yaml lists [dog, cat], the dataset's classes in label order are [cat, dog]"}},
	}, {
		desc: "dataset.yaml of another format",
		change: func(t *testing.T, dir string) {
			write(t, dir, "dataset.yaml", "name: pets\ntask: segmentation\nformat: yolo\n")
		},
		want: []events.FieldError{
			{Field: "dataset.yaml:2", Reason: "task is segmentation, the dataset is being checked for detection"},
			{Field: "dataset.yaml:3", Reason: "format is yolo, the dataset is being checked as coco"},
		},
	}})
}

// TestValidateCounts checks Summary.Files and Bytes against a manifest of
// the same data, on an in-memory file system.
func TestValidateCounts(t *testing.T) {
	fsys := fstest.MapFS{
		"dataset.yaml":     {Data: []byte("name: pets\ntask: classification\nformat: imagefolder\nfiles: 4\nbytes: 10\n")},
		"manifest.json":    {Data: []byte("{}")},
		"train/cat/a.png":  {Data: []byte("12")},
		"train/cat/b.jpg":  {Data: []byte("123")},
		"train/dog/c.jpeg": {Data: []byte("1234")},
		"README":           {Data: []byte("1")},
	}
	sum, problems, err := Validate(fsys, "classification", "imagefolder")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]events.FieldError(nil), problems); diff != "" {
		t.Errorf("Validate() problems (-want +got):\n%s", diff)
	}
	want := Summary{Classes: []string{"cat", "dog"}, Train: 3, Files: 4, Bytes: 10}
	if diff := cmp.Diff(want, sum); diff != "" {
		t.Errorf("Validate() summary (-want +got):\n%s", diff)
	}
}

// TestValidateLinks: a link to a file counts as the file it points to, in
// Validate as in BuildManifest; a link to a folder is not followed by
// either.
func TestValidateLinks(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	datasettest.MakeImageFolder(t, dir, 2, 8)
	write(t, elsewhere, "big.png", strings.Repeat("x", 1000))
	write(t, elsewhere, "folder/c.png", "x")
	for _, link := range [][2]string{{"big.png", "train/cat/linked.png"}, {"folder", "train/dog/folder"}} {
		if err := os.Symlink(filepath.Join(elsewhere, link[0]), filepath.Join(dir, filepath.FromSlash(link[1]))); err != nil {
			t.Fatal(err)
		}
	}
	sum, problems, err := Validate(os.DirFS(dir), "classification", "imagefolder")
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("Validate() problems = %v, want none", problems)
	}
	m, err := BuildManifest(context.Background(), os.DirFS(dir), "classification", "imagefolder")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Files != len(m.Files) || sum.Bytes != m.Bytes() || sum.Files != 7 {
		t.Errorf("Validate() counts %d files, %d bytes; BuildManifest %d files, %d bytes; want 7 files in both", sum.Files, sum.Bytes, len(m.Files), m.Bytes())
	}
}

func TestValidateTaskFormat(t *testing.T) {
	fsys := fstest.MapFS{"train/cat/a.png": {Data: []byte("1")}}
	for _, tc := range []struct {
		task, format string
		want         []events.FieldError
	}{
		{"classification", "yolo", []events.FieldError{{Field: "format", Reason: "yolo does not fit task classification (classification takes imagefolder)"}}},
		{"detection", "parquet", []events.FieldError{{Field: "format", Reason: `"parquet" is not one of imagefolder, yolo, coco`}}},
	} {
		_, problems, err := Validate(fsys, tc.task, tc.format)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, problems); diff != "" {
			t.Errorf("Validate(%s, %s) (-want +got):\n%s", tc.task, tc.format, diff)
		}
	}
}

func TestValidateMaxProblems(t *testing.T) {
	fsys := fstest.MapFS{"train/dog/a.png": {Data: []byte("1")}, "train/cat/b.png": {Data: []byte("1")}}
	for i := range MaxProblems + 50 {
		fsys[fmt.Sprintf("train/cat/%03d.txt", i)] = &fstest.MapFile{Data: []byte("x")}
	}
	_, problems, err := Validate(fsys, "classification", "imagefolder")
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != MaxProblems+1 {
		t.Fatalf("Validate() = %d problems, want %d", len(problems), MaxProblems+1)
	}
	if got, want := problems[MaxProblems], (events.FieldError{Field: "dataset", Reason: "50 more problems not listed"}); got != want {
		t.Errorf("last problem = %v, want %v", got, want)
	}
}

// failingFS fails to open one file, as object storage may.
type failingFS struct {
	fs.FS
	name string
}

var errUnreachable = errors.New("store unreachable")

func (f failingFS) Open(name string) (fs.File, error) {
	if name == f.name {
		return nil, errUnreachable
	}
	return f.FS.Open(name)
}

// TestValidateReadError: a store that fails is an error to retry on, not
// a problem of the dataset.
func TestValidateReadError(t *testing.T) {
	dir := t.TempDir()
	datasettest.MakeYOLO(t, dir, datasettest.Boxes, 2, 8)
	for _, name := range []string{"data.yaml", "labels/train/train_001.txt", "."} {
		_, problems, err := Validate(failingFS{os.DirFS(dir), name}, "detection", "yolo")
		if !errors.Is(err, errUnreachable) {
			t.Errorf("Validate() with %s failing = %v, %v; want errUnreachable", name, problems, err)
		}
	}
}
