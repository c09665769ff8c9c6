package dataset_test

import (
	"fmt"
	"testing/fstest"

	"github.com/vision-platform/vp/internal/dataset"
)

func ExampleValidate() {
	fsys := fstest.MapFS{
		"dataset.yaml":                {Data: []byte("name: parts\ntask: detection\nformat: yolo\n")},
		"data.yaml":                   {Data: []byte("train: images/train\nval: images/train\nnames: [bolt, nut, washer]\n")},
		"images/train/a.jpg":          {Data: []byte("jpeg")},
		"images/train/b.jpg":          {Data: []byte("jpeg")},
		"labels/train/a.txt":          {Data: []byte("0 0.5 0.5 0.2 0.2\n2 0.1 0.1 0.1 0.1\n7 0.5 0.5 0.2 0.2\n")},
		"labels/train/forgotten.txt":  {Data: []byte("1 0.5 0.5 0.2 0.2\n")},
		"images/train/notes/todo.md":  {Data: []byte("label b.jpg")},
		"README.md":                   {Data: []byte("# parts\n")},
		"images/train/.DS_Store":      {Data: []byte{0}},
		"labels/train.cache":          {Data: []byte{0}},
		"images/train/nested/c.jpeg":  {Data: []byte("jpeg")},
		"labels/train/nested/c.txt":   {Data: []byte("1 0.5 0.5 1.5 0.2\n")},
		"labels/train/nested/c2.txt":  {Data: []byte("")},
		"images/train/nested/c2.tiff": {Data: []byte("tiff")},
	}
	sum, problems, err := dataset.Validate(fsys, "detection", "yolo")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d train images, %d objects, %d background\n", sum.Train, sum.Objects, sum.Background)
	for _, p := range problems {
		fmt.Println(p)
	}
	// Output:
	// 4 train images, 4 objects, 2 background
	// images/train/notes/todo.md: not an image (.bmp .dng .jpeg .jpg .mpo .png .tif .tiff .webp .pfm)
	// labels/train/a.txt:3: class 7 is not below nc=3 (names has 3 entries)
	// labels/train/nested/c.txt:1: w 1.5 is outside [0, 1] (coordinates are fractions of the image size)
	// labels/train/forgotten.txt: no image for this label (looked for images/train/forgotten.<bmp|dng|jpeg|jpg|mpo|png|tif|tiff|webp|pfm>)
}

func ExampleManifest_Marshal() {
	m := &dataset.Manifest{Task: "classification", Format: "imagefolder", Files: []dataset.File{
		{Path: "train/dog/1.png", Size: 3, SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{Path: "train/cat/1.png", Size: 0, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}}
	b, err := m.Marshal()
	if err != nil {
		panic(err)
	}
	fmt.Print(string(b))
	fmt.Println(dataset.Digest(b))
	// Output:
	// {
	//   "version": 1,
	//   "task": "classification",
	//   "format": "imagefolder",
	//   "files": [
	//     {
	//       "path": "train/cat/1.png",
	//       "size": 0,
	//       "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	//     },
	//     {
	//       "path": "train/dog/1.png",
	//       "size": 3,
	//       "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	//     }
	//   ]
	// }
	// sha256:c4a1bf26aea73f5c843dedfb9043ca5fc33b3eb9ec69575ed989559e14cbab54
}
