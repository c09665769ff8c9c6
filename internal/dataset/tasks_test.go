package dataset

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/events"
)

// TestTasksMatchEvents keeps this package's tasks and formats those the
// events' schemas allow.
func TestTasksMatchEvents(t *testing.T) {
	b, err := events.Schema(events.DatasetUploaded)
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]struct {
			Enum []string `json:"enum"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(schema.Properties["task"].Enum, Tasks()); diff != "" {
		t.Errorf("Tasks() differs from the dataset.uploaded schema's tasks (-events +dataset):\n%s", diff)
	}
	if diff := cmp.Diff(schema.Properties["format"].Enum, AllFormats()); diff != "" {
		t.Errorf("AllFormats() differs from the dataset.uploaded schema's formats (-events +dataset):\n%s", diff)
	}
}

func TestCheckTaskFormat(t *testing.T) {
	for _, tc := range []struct {
		task, format string
		want         []events.FieldError
	}{
		{"classification", "imagefolder", nil},
		{"detection", "yolo", nil},
		{"detection", "coco", nil},
		{"segmentation", "coco", nil},
		{"pose", "yolo", nil},
		{"pose", "coco", []events.FieldError{{Field: "format", Reason: "coco does not fit task pose (pose takes yolo)"}}},
		{"detection", "imagefolder", []events.FieldError{{Field: "format", Reason: "imagefolder does not fit task detection (detection takes yolo or coco)"}}},
		{"detection", "parquet", []events.FieldError{{Field: "format", Reason: `"parquet" is not one of imagefolder, yolo, coco`}}},
		{"ocr", "coco", []events.FieldError{{Field: "task", Reason: `"ocr" is not one of classification, detection, segmentation, pose, captioning`}}},
		{"", "", []events.FieldError{
			{Field: "task", Reason: "required (one of classification, detection, segmentation, pose, captioning)"},
			{Field: "format", Reason: "required (one of imagefolder, yolo, coco)"},
		}},
	} {
		if diff := cmp.Diff(tc.want, CheckTaskFormat(tc.task, tc.format)); diff != "" {
			t.Errorf("CheckTaskFormat(%q, %q) (-want +got):\n%s", tc.task, tc.format, diff)
		}
	}
}
