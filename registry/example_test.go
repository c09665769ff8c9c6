package registry_test

import (
	"fmt"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/registry"
)

func ExampleCatalog_Lookup() {
	m, err := registry.Default().Lookup("torchvision", "resnet18")
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Status, m.Task, m.Formats, m.Defaults().ImageSize)
	// Output: ready classification [imagefolder] 224
}

func ExampleCatalog_Filter() {
	for _, m := range registry.Default().Filter(registry.Query{Framework: "ultralytics", Task: events.TaskPose}) {
		fmt.Println(m.Ref(), m.AdapterArg(false), m.AdapterArg(true))
	}
	// Output: ultralytics/yolo11n-pose yolo11n-pose.yaml yolo11n-pose.pt
}

func ExampleCatalog_CheckJob() {
	j := events.JobRequestedData{
		Dataset:         events.DatasetRef{Task: events.TaskClassification, Format: events.FormatImageFolder},
		Model:           events.ModelRef{Framework: "timm", Name: "vit_base_patch16_224"},
		Hyperparameters: events.Hyperparameters{Epochs: 10, BatchSize: 32, LearningRate: 0.01, ImageSize: 384},
	}
	for _, fe := range registry.Default().CheckJob(j) {
		fmt.Println(fe.Field)
	}
	// Output:
	// hyperparameters.imageSize
}
