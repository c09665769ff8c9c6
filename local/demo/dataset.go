package demo

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Dataset is the small dataset a demo makes.
type Dataset struct {
	// PerClass images of each class in train/, half as many in val/.
	PerClass int
	// Side is the images' width and height in pixels.
	Side int
	// Seed makes the pixels: a new seed is new content (a new job), the
	// same seed the same bytes.
	Seed uint64
}

// Classes are the classes of the demo dataset, in label order.
var Classes = []string{"cat", "dog"}

// Write writes an ImageFolder dataset under dir: reddish "cat" and bluish
// "dog" PNGs with noise, train/<class>/ and val/<class>/. It returns the
// number of files and their bytes.
func (d Dataset) Write(dir string) (files int, size int64, err error) {
	r := rand.New(rand.NewPCG(d.Seed, d.Seed^0x9e3779b97f4a7c15))
	for _, split := range []struct {
		name string
		n    int
	}{{"train", d.PerClass}, {"val", max(1, d.PerClass/2)}} {
		for ci, class := range Classes {
			folder := filepath.Join(dir, split.name, class)
			if err := os.MkdirAll(folder, 0o755); err != nil {
				return 0, 0, fmt.Errorf("making the dataset: %w", err)
			}
			for i := range split.n {
				b, err := d.image(r, ci)
				if err != nil {
					return 0, 0, err
				}
				if err := os.WriteFile(filepath.Join(folder, fmt.Sprintf("%03d.png", i)), b, 0o644); err != nil {
					return 0, 0, fmt.Errorf("making the dataset: %w", err)
				}
				files++
				size += int64(len(b))
			}
		}
	}
	return files, size, nil
}

func (d Dataset) image(r *rand.Rand, class int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, d.Side, d.Side))
	for y := range d.Side {
		for x := range d.Side {
			n := uint8(r.IntN(60))
			c := color.RGBA{200 + n/2, n, n, 255}
			if class == 1 {
				c = color.RGBA{n, n, 200 + n/2, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, fmt.Errorf("encoding an image: %w", err)
	}
	return b.Bytes(), nil
}

// Manifest is the dataset.yaml of a demo dataset: its name, task and
// format, its files and bytes (the dataset is complete once they are all
// there), and the training it asks for.
func Manifest(name string, files int, size int64, t Training) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\ntask: classification\nformat: imagefolder\nfiles: %d\nbytes: %d\n", name, files, size)
	fmt.Fprintf(&b, "classes: [%s]\n", strings.Join(Classes, ", "))
	fmt.Fprintf(&b, "train:\n  model: %s\n", t.Model)
	fmt.Fprintf(&b, "  hyperparameters: {epochs: %d, batchSize: %d, learningRate: %g, imageSize: %d}\n", t.Epochs, t.BatchSize, t.LearningRate, t.ImageSize)
	fmt.Fprintf(&b, "  resources: {gpus: %d", t.GPUs)
	if t.Executor != "" {
		fmt.Fprintf(&b, ", executor: %s", t.Executor)
	}
	b.WriteString("}\n")
	return b.String()
}

// Training is what the demo dataset asks to train.
type Training struct {
	Model        string // framework/name
	Epochs       int
	BatchSize    int
	LearningRate float64
	ImageSize    int
	GPUs         int
	// Executor, when set, is the executor the job asks for (process,
	// docker, kubernetes); empty: the gpu-runner's.
	Executor string
}
