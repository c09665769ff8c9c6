package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vision-platform/vp/events"
)

// yoloDataName is the file of a YOLO dataset that names the classes and
// the image folders of each split.
const yoloDataName = "data.yaml"

// yoloExts are the image extensions ultralytics reads (case-insensitive).
var yoloExts = []string{".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm"}

// yoloData is what the checks need of a data.yaml.
type yoloData struct {
	names    []string
	nc       int // classes a label may name: len(names), or nc without names
	kptShape []int
	splits   []yoloSplit
}

// yoloSplit is one split of data.yaml: its key and the folders or image
// list files it names, relative to the dataset.
type yoloSplit struct {
	key     string
	sources []string
}

// yolo checks a YOLO dataset the way ultralytics reads it: data.yaml's
// names (a list or an index map) and nc, the train and val image folders
// (or .txt lists of ./ paths), and for each image the label file that
// replaces the last images/ of its path with labels/ and its extension
// with .txt. Label lines are checked for the task's shape.
func (c *checker) yolo() {
	if !c.has(yoloDataName) {
		c.add(yoloDataName, "required: the class names (names) and the image folders of the splits (train, val)")
		c.noUnclaimed = true
		return
	}
	c.claimed[yoloDataName] = true
	b, ok := c.readFile(yoloDataName)
	if !ok {
		return
	}
	d := c.yoloDataYAML(b)
	if d == nil {
		c.noUnclaimed = true
		return
	}
	c.sum.Classes = d.names
	labelled := map[string]bool{} // label files matched to an image
	labelDirs := map[string]bool{}
	checked := map[string]bool{} // images whose label was looked at
	for _, s := range d.splits {
		images := 0
		for _, src := range s.sources {
			var imgs []string
			if strings.HasSuffix(src, ".txt") {
				imgs = c.yoloList(src)
			} else {
				labelDirs[parent(yoloLabelPath(src+"/x.jpg"))] = true
				for _, f := range c.under(src) {
					if ignored(f) {
						continue
					}
					ext := strings.ToLower(path.Ext(f))
					switch {
					case slices.Contains(yoloExts, ext):
						imgs = append(imgs, f)
					case ext == ".txt" && yoloLabelPath(f) == f:
						// A label next to its image (no images/ folder in the path).
					case !c.claimed[f]: // once, though two splits name the folder
						c.claimed[f] = true
						c.add(f, "not an image (%s)", strings.Join(yoloExts, " "))
					}
				}
			}
			for _, img := range imgs {
				images++
				c.claimed[img] = true
				label := yoloLabelPath(img)
				labelDirs[parent(label)] = true
				if checked[img] {
					continue
				}
				checked[img] = true
				if c.size[img] == 0 {
					c.add(img, "empty file")
				}
				if !c.has(label) {
					c.sum.Background++
					continue
				}
				labelled[label] = true
				c.claimed[label] = true
				if n := c.yoloLabel(label, d); n == 0 {
					c.sum.Background++
				} else {
					c.sum.Objects += n
				}
			}
		}
		switch s.key {
		case "train":
			c.sum.Train += images
		case "val":
			c.sum.Val += images
		case "test":
			c.sum.Test += images
		}
	}
	// Labels without an image, and the label caches ultralytics writes
	// next to a label folder (labels/train.cache).
	for _, f := range c.files {
		if cache, ok := strings.CutSuffix(f, ".cache"); ok && labelDirs[cache] {
			c.claimed[f] = true
			continue
		}
		if !inDir(f, labelDirs) {
			continue
		}
		switch {
		case labelled[f] || ignored(f):
		case strings.HasSuffix(f, ".txt") && !c.claimed[f]:
			c.claimed[f] = true
			stem := strings.TrimSuffix(yoloImagePath(f), ".txt")
			if img := c.withExt(stem, yoloExts); img != "" {
				c.add(f, "its image %s is in no split of %s", img, yoloDataName)
				continue
			}
			c.add(f, "no image for this label (looked for %s.<%s>)", stem, strings.Join(trimDots(yoloExts), "|"))
		}
	}
}

// inDir says whether f is below one of dirs.
func inDir(f string, dirs map[string]bool) bool {
	for d := parent(f); d != ""; d = parent(d) {
		if dirs[d] {
			return true
		}
	}
	return false
}

// withExt is the first file stem+ext there is (ext lower- or upper-case),
// or "".
func (c *checker) withExt(stem string, exts []string) string {
	for _, ext := range exts {
		for _, f := range []string{stem + ext, stem + strings.ToUpper(ext)} {
			if c.has(f) {
				return f
			}
		}
	}
	return ""
}

func trimDots(exts []string) []string {
	out := make([]string, len(exts))
	for i, e := range exts {
		out[i] = strings.TrimPrefix(e, ".")
	}
	return out
}

// yoloLabelPath is ultralytics' img2label_paths: the last images/ folder
// of the path becomes labels/, the extension .txt.
func yoloLabelPath(img string) string {
	p := "/" + img
	if i := strings.LastIndex(p, "/images/"); i >= 0 {
		p = p[:i] + "/labels/" + p[i+len("/images/"):]
	}
	return strings.TrimPrefix(strings.TrimSuffix(p, path.Ext(p)), "/") + ".txt"
}

// yoloImagePath is the inverse of yoloLabelPath, without the extension's
// choice: the last labels/ of the path becomes images/.
func yoloImagePath(label string) string {
	p := "/" + label
	if i := strings.LastIndex(p, "/labels/"); i >= 0 {
		p = p[:i] + "/images/" + p[i+len("/labels/"):]
	}
	return strings.TrimPrefix(p, "/")
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): `)

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// yoloDataYAML reads data.yaml; nil when it cannot be used at all.
func (c *checker) yoloDataYAML(b []byte) *yoloData {
	at := func(line int) string { return fmt.Sprintf("%s:%d", yoloDataName, line) }
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		field, reason := yoloDataName, strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLineRE.FindStringSubmatch(reason); m != nil {
			field, reason = at(atoi(m[1])), strings.TrimPrefix(reason, m[0])
		}
		c.add(field, "not valid YAML: %s", reason)
		return nil
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		c.add(yoloDataName, "want a mapping with names, train and val")
		return nil
	}
	root := doc.Content[0]
	keys := map[string]*yaml.Node{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		keys[root.Content[i].Value] = root.Content[i+1]
	}
	d := &yoloData{nc: -1}

	// names: a list, or a map from index to name.
	switch n := keys["names"]; {
	case n == nil:
		c.add(yoloDataName, "names: required (the class names, a list or a map from index to name)")
	case n.Kind == yaml.SequenceNode:
		for i, v := range n.Content {
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				c.add(at(v.Line), "names[%d]: want a class name", i)
			}
			d.names = append(d.names, v.Value)
		}
	case n.Kind == yaml.MappingNode:
		byIndex := map[int]string{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			idx, err := strconv.Atoi(k.Value)
			switch {
			case err != nil || idx < 0:
				c.add(at(k.Line), "names: key %q is not a class index (0, 1, ...)", k.Value)
				continue
			case v.Kind != yaml.ScalarNode || v.Value == "":
				c.add(at(v.Line), "names[%d]: want a class name", idx)
			}
			if _, dup := byIndex[idx]; dup {
				c.add(at(k.Line), "names: index %d is listed twice", idx)
			}
			byIndex[idx] = v.Value
		}
		d.names = make([]string, len(byIndex))
		for i := range d.names {
			name, ok := byIndex[i]
			if !ok {
				c.add(at(n.Line), "names: index %d is missing (want indexes 0 to %d)", i, len(byIndex)-1)
			}
			d.names[i] = name
		}
	default:
		c.add(at(n.Line), "names: want a list of class names or a map from index to name")
	}
	d.nc = len(d.names)
	if n := keys["names"]; n != nil && len(d.names) == 0 {
		c.add(at(n.Line), "names: no classes")
	}
	if n := keys["nc"]; n != nil {
		nc, err := strconv.Atoi(n.Value)
		switch {
		case n.Kind != yaml.ScalarNode || err != nil || nc < 1:
			c.add(at(n.Line), "nc: %q is not a number of classes", n.Value)
		case keys["names"] == nil:
			d.nc = nc
		case nc != len(d.names):
			c.add(at(n.Line), "nc is %d, names has %d entries", nc, len(d.names))
		}
	}

	if d.nc < 1 {
		return nil // no class to check labels against
	}
	if c.task == events.TaskPose {
		n := keys["kpt_shape"]
		ok := n != nil && n.Kind == yaml.SequenceNode && len(n.Content) == 2
		if ok {
			for _, v := range n.Content {
				k, err := strconv.Atoi(v.Value)
				ok = ok && err == nil && k >= 1
				d.kptShape = append(d.kptShape, k)
			}
			ok = ok && (d.kptShape[1] == 2 || d.kptShape[1] == 3)
		}
		switch {
		case n == nil:
			c.add(yoloDataName, "kpt_shape: required for pose ([keypoints, 2 or 3], e.g. [17, 3])")
		case !ok:
			c.add(at(n.Line), "kpt_shape: want [keypoints, 2 or 3], e.g. [17, 3]")
			d.kptShape = nil
		}
		if d.kptShape == nil {
			return nil
		}
	}

	base := "."
	if n := keys["path"]; n != nil {
		p := path.Clean(n.Value)
		if n.Kind != yaml.ScalarNode || path.IsAbs(n.Value) || (p != "." && !insidePath(p)) {
			c.add(at(n.Line), "path: %q is not a folder inside the dataset: leave path out so that the folders are found next to data.yaml", n.Value)
			return nil
		}
		base = p
	}
	if keys["val"] == nil && keys["validation"] != nil {
		keys["val"] = keys["validation"]
	}
	for _, key := range []string{"train", "val", "test"} {
		n := keys[key]
		if n == nil {
			if key != "test" {
				c.add(yoloDataName, "%s: required (the %s images: a folder such as images/%s; val may name the train folder)", key, key, key)
			}
			continue
		}
		s := yoloSplit{key: key}
		var vals []*yaml.Node
		switch n.Kind {
		case yaml.ScalarNode:
			vals = []*yaml.Node{n}
		case yaml.SequenceNode:
			vals = n.Content
		default:
			c.add(at(n.Line), "%s: want a folder or a list of folders", key)
			continue
		}
		for _, v := range vals {
			p := path.Join(base, v.Value)
			if rest, ok := strings.CutPrefix(v.Value, "../"); ok {
				// ultralytics retries "../x" as "x" (Roboflow's exports
				// name ../train/images); outside the dataset there is
				// nothing, so only the retry can be meant.
				p = path.Join(base, rest)
			}
			switch {
			case v.Kind != yaml.ScalarNode || v.Value == "":
				c.add(at(v.Line), "%s: want a folder", key)
			case path.IsAbs(v.Value) || !insidePath(p):
				c.add(at(v.Line), "%s: %q is not a folder inside the dataset", key, v.Value)
			case strings.HasSuffix(p, ".txt"):
				if !c.has(p) {
					c.add(at(v.Line), "%s: list file %s is not in the dataset", key, p)
					continue
				}
				c.claimed[p] = true
				s.sources = append(s.sources, p)
			case !c.dirs[p]:
				c.add(at(v.Line), "%s: folder %s is not in the dataset", key, p)
			default:
				s.sources = append(s.sources, p)
			}
		}
		d.splits = append(d.splits, s)
	}
	return d
}

// insidePath says whether a cleaned relative path stays inside the
// dataset and is not its root.
func insidePath(p string) bool {
	return p != "." && p != ".." && !strings.HasPrefix(p, "../")
}

// yoloList reads an image list file: one image per line, "./" paths
// relative to the dataset (ultralytics' rule).
func (c *checker) yoloList(list string) []string {
	b, ok := c.readFile(list)
	if !ok {
		return nil
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		at := fmt.Sprintf("%s:%d", list, i+1)
		rel, ok := strings.CutPrefix(line, "./")
		p := path.Clean(rel)
		switch {
		case !ok:
			c.add(at, "%q: image paths in a list start with ./ (relative to the dataset)", line)
		case !insidePath(p):
			c.add(at, "%q is not a path inside the dataset", line)
		case !c.has(p):
			c.add(at, "%s is not in the dataset", p)
		case !slices.Contains(yoloExts, strings.ToLower(path.Ext(p))):
			c.add(at, "%s is not an image (%s)", p, strings.Join(yoloExts, " "))
		default:
			out = append(out, p)
		}
	}
	return out
}

// yoloLabel checks a label file and returns its number of objects.
func (c *checker) yoloLabel(label string, d *yoloData) int {
	b, ok := c.readFile(label)
	if !ok {
		return 0
	}
	n := 0
	for i, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		n++
		at := fmt.Sprintf("%s:%d", label, i+1)
		if reason := yoloLine(fields, d, c.task); reason != "" {
			c.add(at, "%s", reason)
		}
	}
	return n
}

// yoloLine checks one label line; "" when it is good.
func yoloLine(fields []string, d *yoloData, task string) string {
	var problems []string
	class, err := strconv.Atoi(fields[0])
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("class %q is not an integer", fields[0]))
	case class < 0:
		problems = append(problems, fmt.Sprintf("class %d is negative", class))
	case class >= d.nc:
		problems = append(problems, fmt.Sprintf("class %d is not below nc=%d (names has %d entries)", class, d.nc, len(d.names)))
	}
	vals := len(fields) - 1
	var names func(i int) string
	visDim := 0 // with keypoints of 3 values, the third is a visibility
	switch task {
	case events.TaskDetection:
		switch {
		case vals == 4:
			names = boxName
		case vals >= 6 && vals%2 == 0:
			names = pointName(0)
		default:
			problems = append(problems, fmt.Sprintf("want class cx cy w h (or class and polygon points), got %d values", len(fields)))
		}
	case events.TaskSegmentation:
		if vals >= 6 && vals%2 == 0 {
			names = pointName(0)
		} else {
			problems = append(problems, fmt.Sprintf("want class and a polygon of at least 3 points x y, got %d values", len(fields)))
		}
	case events.TaskPose:
		k, dim := d.kptShape[0], d.kptShape[1]
		if vals == 4+k*dim {
			names = func(i int) string {
				if i < 4 {
					return boxName(i)
				}
				j := i - 4
				return fmt.Sprintf("keypoint %d %s", j/dim+1, []string{"x", "y", "visibility"}[j%dim])
			}
			if dim == 3 {
				visDim = 3
			}
		} else {
			problems = append(problems, fmt.Sprintf("want class cx cy w h and %d keypoints of %d values (%d values), got %d", k, dim, 5+k*dim, len(fields)))
		}
	}
	if names != nil {
		for i, f := range fields[1:] {
			v, err := strconv.ParseFloat(f, 64)
			limit := 1.0
			if visDim > 0 && i >= 4 && (i-4)%visDim == 2 {
				limit = 2
			}
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s %q is not a number", names(i), f))
			case v < 0 || v > limit:
				what := "coordinates are fractions of the image size"
				if limit == 2 {
					what = "0 not labelled, 1 hidden, 2 visible"
				}
				problems = append(problems, fmt.Sprintf("%s %s is outside [0, %g] (%s)", names(i), f, limit, what))
			default:
				continue
			}
			break // one value problem per line is enough
		}
	}
	return strings.Join(problems, "; ")
}

func boxName(i int) string { return []string{"cx", "cy", "w", "h"}[i] }

func pointName(offset int) func(int) string {
	return func(i int) string {
		return fmt.Sprintf("point %d %s", (i-offset)/2+1, []string{"x", "y"}[(i-offset)%2])
	}
}
