package dataset

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/vision-platform/vp/events"
)

// cocoSplits are the splits whose annotation files the trainers read, as
// annotations/instances_<split>.json (captions_<split>.json for
// captioning); train is required.
var cocoSplits = []string{"train", "val", "test"}

// cocoPrefix is the annotation files' prefix for the task: COCO's
// captions files for captioning, its instances files for the others.
func (c *checker) cocoPrefix() string {
	if c.task == events.TaskCaptioning {
		return "captions_"
	}
	return "instances_"
}

// The parts of COCO's images, annotations and categories that the checks
// read; pointers tell a missing field from a zero one.
type (
	cocoImage struct {
		ID       *int64   `json:"id"`
		FileName *string  `json:"file_name"`
		Width    *float64 `json:"width"`
		Height   *float64 `json:"height"`
	}
	cocoAnnotation struct {
		ID           *int64          `json:"id"`
		ImageID      *int64          `json:"image_id"`
		CategoryID   *int64          `json:"category_id"`
		BBox         *[]float64      `json:"bbox"`
		Segmentation json.RawMessage `json:"segmentation"`
		IsCrowd      int             `json:"iscrowd"`
		Caption      *string         `json:"caption"`
	}
	cocoCategory struct {
		ID   *int64  `json:"id"`
		Name *string `json:"name"`
	}
)

// cocoRef is an annotation's references, checked once the whole file is
// read (categories may come after annotations).
type cocoRef struct {
	index             int
	imageID, category int64
}

// captionRef is a caption's category in its cocoRef: none.
const captionRef = math.MinInt64

// cocoCategories is a split's categories, sorted by id.
type cocoCategories struct {
	ids   []int64
	names []string
}

// coco checks annotations/instances_<split>.json files (train required)
// and their image folders, <split>/ or images/<split>/ as the trainers
// look for them.
func (c *checker) coco() {
	prefix := c.cocoPrefix()
	found := false
	for _, f := range c.files {
		if parent(f) != "annotations" || ignored(f) {
			continue
		}
		split, ok := strings.CutPrefix(strings.TrimSuffix(path.Base(f), ".json"), prefix)
		if !ok || !strings.HasSuffix(f, ".json") || !slices.Contains(cocoSplits, split) {
			c.claimed[f] = true
			c.add(f, "not read: the annotation files are annotations/%s<split>.json for the splits %s", prefix, strings.Join(cocoSplits, ", "))
			continue
		}
		found = true
	}
	if !found {
		c.noUnclaimed = true
	}
	trainFile := "annotations/" + prefix + "train.json"
	if !c.has(trainFile) {
		if c.task == events.TaskCaptioning {
			c.add(trainFile, "required: the train split's images and their captions")
		} else {
			c.add(trainFile, "required: the train split's images, annotations and categories")
		}
	}
	var train *cocoCategories
	for _, split := range cocoSplits {
		f := "annotations/" + prefix + split + ".json"
		if !c.has(f) {
			continue
		}
		c.claimed[f] = true
		cats, images := c.cocoFile(f, split)
		switch split {
		case "train":
			train = cats
			c.sum.Train = images
			if cats != nil {
				c.sum.Classes = cats.names
			}
		case "val":
			c.sum.Val = images
		case "test":
			c.sum.Test = images
		}
		if split != "train" && train != nil && len(train.ids) > 0 && cats != nil && (!slices.Equal(train.ids, cats.ids) || !slices.Equal(train.names, cats.names)) {
			c.add(f, "categories differ from %s's: every split needs the same categories", trainFile)
		}
	}
}

// cocoFile checks one annotation file; it returns the categories (nil
// when they could not be read) and the number of images.
func (c *checker) cocoFile(file, split string) (*cocoCategories, int) {
	imageDir := ""
	for _, d := range []string{split, "images/" + split} {
		if c.dirs[d] {
			imageDir = d
			break
		}
	}
	if imageDir == "" {
		c.add(file, "no image folder for split %s (images/%s/ or %s/)", split, split, split)
	}
	r, err := c.fsys.Open(file)
	if err != nil {
		c.fail(fmt.Errorf("reading %s: %w", file, err))
		return nil, 0
	}
	defer r.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	problem := func(format string, args ...any) { c.add(file, format, args...) }

	images := map[int64]int{} // image id to its index
	annotated := map[int64]bool{}
	annIDs := map[int64]int{}
	var refs []cocoRef
	var cats *cocoCategories
	catIdx := map[int64]int{}
	nImages := 0
	seen := map[string]bool{}

	err = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if tok != json.Delim('{') {
			problem("want a JSON object with images, annotations and categories")
			return nil
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			seen[key] = true
			switch key {
			case "images":
				err = cocoArray(dec, key, problem, func(i int, im *cocoImage) {
					at := fmt.Sprintf("images[%d]", i)
					nImages++
					if im.ID == nil {
						problem("%s.id: required", at)
					} else if j, dup := images[*im.ID]; dup {
						problem("%s.id %d is also images[%d].id", at, *im.ID, j)
					} else {
						images[*im.ID] = i
					}
					if im.Width == nil || *im.Width <= 0 || im.Height == nil || *im.Height <= 0 {
						problem("%s: width and height are required, above 0 (labels are converted to fractions of them)", at)
					}
					switch name := deref(im.FileName); {
					case im.FileName == nil || name == "":
						problem("%s.file_name: required", at)
					case !insidePath(path.Clean(name)) || path.IsAbs(name):
						problem("%s.file_name %q is not a path inside %s/", at, name, imageDir)
					case imageDir == "":
					case !c.has(path.Join(imageDir, name)):
						problem("%s.file_name %q is not in %s/", at, name, imageDir)
					default:
						p := path.Join(imageDir, name)
						c.claimed[p] = true
						if !slices.Contains(yoloExts, strings.ToLower(path.Ext(p))) {
							problem("%s.file_name %q is not an image the trainers read (%s)", at, name, strings.Join(yoloExts, " "))
						}
					}
				})
			case "annotations":
				err = cocoArray(dec, key, problem, func(i int, a *cocoAnnotation) {
					at := fmt.Sprintf("annotations[%d]", i)
					if a.ID == nil {
						problem("%s.id: required", at)
					} else if j, dup := annIDs[*a.ID]; dup {
						problem("%s.id %d is also annotations[%d].id", at, *a.ID, j)
					} else {
						annIDs[*a.ID] = i
					}
					if a.ImageID == nil {
						problem("%s.image_id: required", at)
					}
					if c.task == events.TaskCaptioning {
						// A caption names no category and no box.
						if a.Caption == nil || strings.TrimSpace(*a.Caption) == "" {
							problem("%s.caption: required (the image's caption, text)", at)
						}
						if a.ImageID != nil {
							refs = append(refs, cocoRef{i, *a.ImageID, captionRef})
						}
						return
					}
					if a.CategoryID == nil {
						problem("%s.category_id: required", at)
					}
					if a.ImageID != nil && a.CategoryID != nil {
						refs = append(refs, cocoRef{i, *a.ImageID, *a.CategoryID})
					}
					if a.BBox == nil {
						problem("%s.bbox: required ([x, y, width, height] in pixels)", at)
					} else if b := *a.BBox; len(b) != 4 || slices.ContainsFunc(b, func(v float64) bool { return v < 0 }) {
						problem("%s.bbox %v: want 4 non-negative numbers (x, y, width, height in pixels)", at, b)
					}
					if c.task == events.TaskSegmentation {
						if reason := cocoSegmentation(a.Segmentation, a.IsCrowd); reason != "" {
							problem("%s.segmentation: %s", at, reason)
						}
					}
				})
			case "categories":
				cats = &cocoCategories{}
				names := map[string]int{}
				err = cocoArray(dec, key, problem, func(i int, cat *cocoCategory) {
					at := fmt.Sprintf("categories[%d]", i)
					name := deref(cat.Name)
					if strings.TrimSpace(name) == "" {
						problem("%s.name: required", at)
					} else if j, dup := names[name]; dup {
						problem("%s.name %q is also categories[%d].name", at, name, j)
					} else {
						names[name] = i
					}
					switch {
					case cat.ID == nil:
						problem("%s.id: required", at)
					default:
						if j, dup := catIdx[*cat.ID]; dup {
							problem("%s.id %d is also categories[%d].id", at, *cat.ID, j)
							return
						}
						catIdx[*cat.ID] = i
						cats.ids = append(cats.ids, *cat.ID)
						cats.names = append(cats.names, name)
					}
				})
			default:
				var skip json.RawMessage
				err = dec.Decode(&skip)
			}
			if err != nil {
				return err
			}
		}
		required := []string{"images", "annotations", "categories"}
		if c.task == events.TaskCaptioning {
			required = required[:2] // captions have no categories
		}
		for _, key := range required {
			if !seen[key] {
				problem("%s: required (an array)", key)
			}
		}
		return nil
	}()
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			c.add(fmt.Sprintf("%s:%d", file, c.lineAt(file, se.Offset)), "not valid JSON: %v", se)
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			problem("not valid JSON: the file ends early")
		default:
			c.fail(fmt.Errorf("reading %s: %w", file, err))
		}
		if imageDir != "" {
			for _, f := range c.under(imageDir) {
				c.claimed[f] = true // which are listed is not known
			}
		}
		return nil, nImages
	}

	if seen["categories"] && len(catIdx) == 0 {
		problem("categories: none (a dataset needs at least one)")
	}
	for _, r := range refs {
		if _, ok := images[r.imageID]; !ok {
			problem("annotations[%d].image_id %d is not an image", r.index, r.imageID)
		}
		if _, ok := catIdx[r.category]; !ok && seen["categories"] && r.category != captionRef {
			problem("annotations[%d].category_id %d is not a category", r.index, r.category)
		}
		annotated[r.imageID] = true
	}
	c.sum.Objects += len(refs)
	if imageDir != "" {
		for _, f := range c.under(imageDir) {
			if !c.claimed[f] && !ignored(f) && !strings.HasPrefix(f, "annotations/") {
				c.claimed[f] = true
				c.add(f, "not listed in %s's images", file)
			}
		}
	}
	for id := range images {
		if !annotated[id] {
			c.sum.Background++
		}
	}
	if cats == nil {
		return nil, nImages
	}
	// Label order is category id order (the YOLO conversion's).
	order := make([]int, len(cats.ids))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(cats.ids[a], cats.ids[b]) })
	sorted := &cocoCategories{}
	for _, i := range order {
		sorted.ids = append(sorted.ids, cats.ids[i])
		sorted.names = append(sorted.names, cats.names[i])
	}
	return sorted, nImages
}

// cocoArray decodes the array value of key element by element, so that a
// large file never sits in memory whole. An element of the wrong shape is
// reported (with its index and field) and skipped; a value that is not an
// array is reported and skipped. Other errors end the file.
func cocoArray[T any](dec *json.Decoder, key string, problem func(string, ...any), each func(int, *T)) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('[') {
		problem("%s: want an array", key)
		return skipValue(dec, tok)
	}
	for i := 0; dec.More(); i++ {
		v := new(T)
		err := dec.Decode(v)
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			at := fmt.Sprintf("%s[%d]", key, i)
			if te.Field != "" {
				at += "." + te.Field
			}
			problem("%s: want %s, got %s", at, jsonKind(te.Type), te.Value)
			continue
		}
		if err != nil {
			return err
		}
		each(i, v)
	}
	_, err = dec.Token() // ]
	return err
}

// skipValue reads the rest of a value whose first token was tok.
func skipValue(dec *json.Decoder, tok json.Token) error {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return nil
	}
	for depth := 1; depth > 0; {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

// jsonKind names a Go type the way a JSON reader thinks of it.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(jsonKind(t.Elem()), "an "), "a ") + "s"
	case reflect.Struct:
		return "an object"
	}
	return t.String()
}

// cocoSegmentation checks an annotation's segmentation for a segmentation
// dataset: polygons, or with iscrowd 1 a run-length encoding.
func cocoSegmentation(raw json.RawMessage, crowd int) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "required for a segmentation dataset"
	}
	if crowd == 1 {
		var rle struct {
			Counts json.RawMessage `json:"counts"`
			Size   []int           `json:"size"`
		}
		if err := json.Unmarshal(raw, &rle); err == nil && len(rle.Counts) > 0 && len(rle.Size) == 2 {
			return ""
		}
	}
	var polys [][]float64
	if err := json.Unmarshal(raw, &polys); err != nil || len(polys) == 0 {
		return "want polygons ([[x1, y1, x2, y2, x3, y3, ...], ...] in pixels), or with iscrowd 1 an RLE object {counts, size}"
	}
	for i, p := range polys {
		if len(p) < 6 || len(p)%2 != 0 {
			return fmt.Sprintf("polygon %d has %d numbers: want x y pairs, at least 3 points", i, len(p))
		}
	}
	return ""
}

// lineAt is the line of a byte offset of a file, for JSON syntax errors.
func (c *checker) lineAt(file string, offset int64) int {
	b, ok := c.readFile(file)
	if !ok {
		return 0
	}
	if offset > int64(len(b)) {
		offset = int64(len(b))
	}
	return bytes.Count(b[:offset], []byte("\n")) + 1
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
