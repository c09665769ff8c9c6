package dataset

import (
	"path"
	"slices"
	"strings"
)

// imageFolderExts are the extensions torchvision's ImageFolder reads
// (case-insensitive); it skips every other file.
var imageFolderExts = []string{".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}

var imageFolderSplits = []string{"train", "val", "test"}

// imageFolder checks train/<class>/<image> with optional val/ and test/
// holding the same classes. The trainers need at least two classes, no
// empty class, and the same classes in every split (the torchvision
// adapter refuses a val/ whose classes differ).
func (c *checker) imageFolder() {
	if !c.dirs["train"] {
		c.add("train/", "required: one folder of images per class, train/<class>/<image>")
	}
	var trainClasses []string
	for _, split := range imageFolderSplits {
		if !c.dirs[split] {
			continue
		}
		classes, images := c.imageFolderSplit(split)
		switch split {
		case "train":
			trainClasses = classes
			c.sum.Train = images
			c.sum.Classes = classes
			switch len(classes) {
			case 0:
				c.add("train/", "no class folders: put each class's images in train/<class>/")
			case 1:
				c.add("train/", "one class (%s): a classifier needs at least two", classes[0])
			}
		case "val":
			c.sum.Val = images
		case "test":
			c.sum.Test = images
		}
		if split == "train" || !c.dirs["train"] {
			continue
		}
		for _, cl := range trainClasses {
			if !slices.Contains(classes, cl) {
				c.add(split+"/", "lacks class %s, which train/ has (every split needs the same classes)", cl)
			}
		}
		for _, cl := range classes {
			if !slices.Contains(trainClasses, cl) {
				c.add(split+"/"+cl+"/", "class %s is not in train/ (every split needs the same classes)", cl)
			}
		}
	}
}

// imageFolderSplit checks one split folder and returns its classes
// (sorted, as ImageFolder orders them) and its number of images.
func (c *checker) imageFolderSplit(split string) ([]string, int) {
	for _, f := range c.files {
		if parent(f) == split && !ignored(f) {
			c.claimed[f] = true
			c.add(f, "images belong in a class folder, %s/<class>/%s", split, path.Base(f))
		}
	}
	var classes []string
	total := 0
	for _, dir := range c.subdirs(split) {
		class := path.Base(dir)
		files := c.under(dir)
		if strings.HasPrefix(class, ".") {
			// ImageFolder takes every folder for a class, hidden ones too.
			c.add(dir+"/", "a hidden folder would be taken for a class: remove it")
			for _, f := range files {
				c.claimed[f] = true
			}
			continue
		}
		classes = append(classes, class)
		n := 0
		for _, f := range files {
			if ignored(f) {
				continue
			}
			c.claimed[f] = true
			ext := strings.ToLower(path.Ext(f))
			switch {
			case slices.Contains(imageFolderExts, ext):
				if c.size[f] == 0 {
					c.add(f, "empty file")
					continue
				}
				n++
			case ext == ".gif":
				c.add(f, "GIF is not read by torchvision's ImageFolder: convert it to PNG")
			default:
				c.add(f, "not an image (%s)", strings.Join(imageFolderExts, " "))
			}
		}
		if n == 0 {
			c.add(dir+"/", "no images: an empty class cannot be trained")
		}
		total += n
	}
	return classes, total
}
