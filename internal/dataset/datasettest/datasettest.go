package datasettest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Classes are the class names of every dataset this package writes, in
// label order.
var Classes = []string{"cat", "dog"}

// MakeImageFolder writes a two-class ImageFolder dataset of small PNGs
// under dir: reddish "cat" and bluish "dog" images of side×side pixels,
// perClass of each in train/<class>/ and perClass/2 in val/<class>/. The
// same arguments always write the same bytes.
func MakeImageFolder(t testing.TB, dir string, perClass, side int) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 9))
	for _, split := range []struct {
		name string
		n    int
	}{{"train", perClass}, {"val", perClass / 2}} {
		for ci, class := range Classes {
			d := filepath.Join(dir, split.name, class)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < split.n; i++ {
				img := image.NewRGBA(image.Rect(0, 0, side, side))
				for y := 0; y < side; y++ {
					for x := 0; x < side; x++ {
						n := uint8(r.IntN(60))
						c := color.RGBA{200 + n/2, n, n, 255}
						if ci == 1 {
							c = color.RGBA{n, n, 200 + n/2, 255}
						}
						img.Set(x, y, c)
					}
				}
				WriteFile(t, dir, fmt.Sprintf("%s/%s/%03d.png", split.name, class, i), encodePNG(t, img))
			}
		}
	}
}

// Labels is the shape of the objects of a YOLO dataset.
type Labels int

const (
	// Boxes labels each object with class cx cy w h (detection).
	Boxes Labels = iota
	// Polygons labels each object with class and its outline's points
	// (segmentation).
	Polygons
	// Keypoints labels each object with class, box and 4 keypoints of 3
	// values (pose; data.yaml has kpt_shape: [4, 3]).
	Keypoints
)

// object is the one object of a generated image: a solid rectangle of
// its class's colour on a grey, noisy background.
type object struct {
	class int
	box   image.Rectangle
}

// objectImage draws image i of a split: the object is class i%2, placed a
// little differently in each image.
func objectImage(t testing.TB, r *rand.Rand, i, side int) ([]byte, object) {
	t.Helper()
	o := object{class: i % len(Classes)}
	w := max(side/2, 2)
	x0 := (side - w) * (i % 3) / 2
	y0 := (side - w) * ((i / 3) % 3) / 2
	o.box = image.Rect(x0, y0, x0+w, y0+w)
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			n := uint8(100 + r.IntN(40))
			c := color.RGBA{n, n, n, 255}
			if (image.Point{x, y}).In(o.box) {
				c = color.RGBA{220, 40, 40, 255}
				if o.class == 1 {
					c = color.RGBA{40, 40, 220, 255}
				}
			}
			img.Set(x, y, c)
		}
	}
	return encodePNG(t, img), o
}

// splits are the splits of the generated detection datasets and their
// sizes for perSplit train images.
func splits(perSplit int) []struct {
	name string
	n    int
} {
	return []struct {
		name string
		n    int
	}{{"train", perSplit}, {"val", max(perSplit/2, 1)}}
}

// MakeYOLO writes a two-class YOLO dataset under dir, as ultralytics
// reads it: data.yaml (train: images/train, val: images/val, nc, names),
// perSplit images in images/train/ and perSplit/2 (at least 1) in
// images/val/, side×side PNGs of one object each, and each image's label
// in labels/<split>/<stem>.txt in the shape labels asks for.
func MakeYOLO(t testing.TB, dir string, labels Labels, perSplit, side int) {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 13))
	data := "train: images/train\nval: images/val\nnc: 2\nnames: [" + strings.Join(Classes, ", ") + "]\n"
	if labels == Keypoints {
		data += "kpt_shape: [4, 3]\n"
	}
	WriteFile(t, dir, "data.yaml", []byte(data))
	for _, split := range splits(perSplit) {
		for i := 0; i < split.n; i++ {
			b, o := objectImage(t, r, i, side)
			stem := fmt.Sprintf("%s/%s_%03d", split.name, split.name, i)
			WriteFile(t, dir, "images/"+stem+".png", b)
			s := float64(side)
			x0, y0 := float64(o.box.Min.X)/s, float64(o.box.Min.Y)/s
			x1, y1 := float64(o.box.Max.X)/s, float64(o.box.Max.Y)/s
			box := fmt.Sprintf("%.6f %.6f %.6f %.6f", (x0+x1)/2, (y0+y1)/2, x1-x0, y1-y0)
			var line string
			switch labels {
			case Boxes:
				line = fmt.Sprintf("%d %s", o.class, box)
			case Polygons:
				line = fmt.Sprintf("%d %.6f %.6f %.6f %.6f %.6f %.6f %.6f %.6f", o.class, x0, y0, x1, y0, x1, y1, x0, y1)
			case Keypoints:
				line = fmt.Sprintf("%d %s %.6f %.6f 2 %.6f %.6f 2 %.6f %.6f 2 %.6f %.6f 2", o.class, box, x0, y0, x1, y0, x1, y1, x0, y1)
			}
			WriteFile(t, dir, "labels/"+stem+".txt", []byte(line+"\n"))
		}
	}
}

// MakeCOCO writes a two-class COCO dataset under dir:
// annotations/instances_train.json and instances_val.json (categories 1
// cat and 2 dog), perSplit images in images/train/ and perSplit/2 (at
// least 1) in images/val/, side×side PNGs of one object each, annotated
// with its bbox and its outline as a polygon, so that the dataset serves
// detection and segmentation.
func MakeCOCO(t testing.TB, dir string, perSplit, side int) {
	t.Helper()
	r := rand.New(rand.NewPCG(17, 19))
	type img struct {
		ID       int    `json:"id"`
		FileName string `json:"file_name"`
		Width    int    `json:"width"`
		Height   int    `json:"height"`
	}
	type ann struct {
		ID           int     `json:"id"`
		ImageID      int     `json:"image_id"`
		CategoryID   int     `json:"category_id"`
		BBox         []int   `json:"bbox"`
		Area         int     `json:"area"`
		Segmentation [][]int `json:"segmentation"`
		IsCrowd      int     `json:"iscrowd"`
	}
	type cat struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	var cats []cat
	for i, c := range Classes {
		cats = append(cats, cat{ID: i + 1, Name: c})
	}
	for _, split := range splits(perSplit) {
		doc := struct {
			Images      []img `json:"images"`
			Annotations []ann `json:"annotations"`
			Categories  []cat `json:"categories"`
		}{Images: []img{}, Annotations: []ann{}, Categories: cats}
		for i := 0; i < split.n; i++ {
			b, o := objectImage(t, r, i, side)
			name := fmt.Sprintf("%s_%03d.png", split.name, i)
			WriteFile(t, dir, "images/"+split.name+"/"+name, b)
			doc.Images = append(doc.Images, img{ID: i + 1, FileName: name, Width: side, Height: side})
			bx := o.box
			doc.Annotations = append(doc.Annotations, ann{
				ID: i + 1, ImageID: i + 1, CategoryID: o.class + 1,
				BBox:         []int{bx.Min.X, bx.Min.Y, bx.Dx(), bx.Dy()},
				Area:         bx.Dx() * bx.Dy(),
				Segmentation: [][]int{{bx.Min.X, bx.Min.Y, bx.Max.X, bx.Min.Y, bx.Max.X, bx.Max.Y, bx.Min.X, bx.Max.Y}},
			})
		}
		b, err := json.MarshalIndent(doc, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		WriteFile(t, dir, "annotations/instances_"+split.name+".json", b)
	}
}

// MakeCaptions writes a COCO captions dataset under dir, for captioning:
// annotations/captions_train.json and captions_val.json, perSplit images
// in images/train/ and perSplit/2 (at least 1) in images/val/, side×side
// PNGs of one object each, with two captions each naming the object's
// class and where it is.
func MakeCaptions(t testing.TB, dir string, perSplit, side int) {
	t.Helper()
	r := rand.New(rand.NewPCG(23, 29))
	type img struct {
		ID       int    `json:"id"`
		FileName string `json:"file_name"`
		Width    int    `json:"width"`
		Height   int    `json:"height"`
	}
	type ann struct {
		ID      int    `json:"id"`
		ImageID int    `json:"image_id"`
		Caption string `json:"caption"`
	}
	for _, split := range splits(perSplit) {
		doc := struct {
			Images      []img `json:"images"`
			Annotations []ann `json:"annotations"`
		}{Images: []img{}, Annotations: []ann{}}
		for i := 0; i < split.n; i++ {
			b, o := objectImage(t, r, i, side)
			name := fmt.Sprintf("%s_%03d.png", split.name, i)
			WriteFile(t, dir, "images/"+split.name+"/"+name, b)
			doc.Images = append(doc.Images, img{ID: i + 1, FileName: name, Width: side, Height: side})
			where := "left"
			if o.box.Min.X+o.box.Max.X > side {
				where = "right"
			}
			cls := Classes[o.class]
			doc.Annotations = append(doc.Annotations,
				ann{ID: 2*i + 1, ImageID: i + 1, Caption: "a " + cls + " on the " + where},
				ann{ID: 2*i + 2, ImageID: i + 1, Caption: "a small " + cls + " on a plain background"})
		}
		b, err := json.MarshalIndent(doc, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		WriteFile(t, dir, "annotations/captions_"+split.name+".json", b)
	}
}

// WriteFile writes data to dir/rel (a slash path), making its folders.
func WriteFile(t testing.TB, dir, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// PNG is a side×side PNG of one colour.
func PNG(t testing.TB, side int, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			img.Set(x, y, c)
		}
	}
	return encodePNG(t, img)
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
