package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/strictyaml"
)

// MaxProblems is the most problems Validate lists. Past it, one last entry
// (on "dataset") says how many more there were, so that a dataset.rejected
// event stays small however broken the dataset is.
const MaxProblems = 200

// Summary is what Validate learned about a dataset.
type Summary struct {
	// Classes are the class names in label order: ImageFolder's sorted
	// folder names, data.yaml's names, COCO's categories by id.
	Classes []string `json:"classes,omitempty"`
	// Train, Val and Test are the number of images of each split.
	Train int `json:"train"`
	Val   int `json:"val"`
	Test  int `json:"test,omitempty"`
	// Objects is the number of labelled objects (YOLO label lines, COCO
	// annotations); 0 for classification.
	Objects int `json:"objects,omitempty"`
	// Background is the number of images without any object (YOLO images
	// without a label file or with an empty one, COCO images without
	// annotations). They are allowed: they teach the model what is not an
	// object.
	Background int `json:"background,omitempty"`
	// Files and Bytes count the data files (all but dataset.yaml and
	// manifest.json at the root) and their total size.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// Validate checks that the complete dataset in fsys (rooted at the
// dataset's prefix) has the layout of format and fits task, and lists
// every problem (up to MaxProblems) with Field the file, "file:line" where
// a line is meant, and a reason. A dataset.yaml at the root is checked as
// well, and the class names, file count and size it declares must match
// the data.
//
// Only fs.ReadDir (through fs.WalkDir), Open, fs.ReadFile and, for
// symbolic links, fs.Stat are used, so fsys may be a view of object
// storage. The error is for fsys failing to read: a reason to retry, not
// to reject the dataset. The problems are the dataset's.
func Validate(fsys fs.FS, task, format string) (Summary, []events.FieldError, error) {
	c := &checker{fsys: fsys, task: task, format: format, claimed: map[string]bool{}, size: map[string]int64{}, dirs: map[string]bool{}, below: map[string][]string{}}
	if tf := CheckTaskFormat(task, format); len(tf) > 0 {
		return Summary{}, tf, nil
	}
	if err := c.walk(); err != nil {
		return Summary{}, nil, err
	}
	c.checkSpec()
	switch format {
	case events.FormatImageFolder:
		c.imageFolder()
	case events.FormatYOLO:
		c.yolo()
	case events.FormatCOCO:
		c.coco()
	}
	if c.err != nil {
		return Summary{}, nil, c.err
	}
	c.checkSpecData()
	c.checkUnclaimed()
	return c.sum, c.result(), nil
}

// checker is one run of Validate.
type checker struct {
	fsys         fs.FS
	task, format string

	files   []string // every file, in walk (lexical) order
	size    map[string]int64
	dirs    map[string]bool     // every directory but the root
	below   map[string][]string // the files below each directory
	claimed map[string]bool     // files a layout rule accounted for
	// noUnclaimed turns off the report of files outside the layout, when
	// the layout could not be determined (no data.yaml, no annotations).
	noUnclaimed bool

	spec     *Spec
	problems []events.FieldError
	dropped  int
	sum      Summary
	err      error // the first read error of fsys
}

func (c *checker) add(field, format string, args ...any) {
	if len(c.problems) >= MaxProblems {
		c.dropped++
		return
	}
	c.problems = append(c.problems, events.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// fail records a read error of fsys; Validate returns the first.
func (c *checker) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

func (c *checker) result() []events.FieldError {
	out := c.problems
	if c.dropped > 0 {
		out = append(out, events.FieldError{Field: "dataset", Reason: fmt.Sprintf("%d more problems not listed", c.dropped)})
	}
	return out
}

func (c *checker) walk() error {
	err := fs.WalkDir(c.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if d.IsDir() {
			c.dirs[p] = true
			return nil
		}
		info, err := fileInfo(c.fsys, p, d)
		if err != nil || info.IsDir() {
			return err
		}
		c.files = append(c.files, p)
		c.size[p] = info.Size()
		for d := parent(p); d != ""; d = parent(d) {
			c.below[d] = append(c.below[d], p)
		}
		if IsDataFile(p) {
			c.sum.Files++
			c.sum.Bytes += info.Size()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing dataset: %w", err)
	}
	return nil
}

// fileInfo is the file at p as it reads: a symbolic link's target (a link
// to a folder is not followed, as fs.WalkDir does not follow it).
func fileInfo(fsys fs.FS, p string, d fs.DirEntry) (fs.FileInfo, error) {
	if d.Type()&fs.ModeSymlink != 0 {
		return fs.Stat(fsys, p)
	}
	return d.Info()
}

func (c *checker) has(p string) bool {
	_, ok := c.size[p]
	return ok
}

// under lists the files below dir (recursively), in walk order.
func (c *checker) under(dir string) []string { return c.below[dir] }

// subdirs lists the directories directly in dir ("" for the root).
func (c *checker) subdirs(dir string) []string {
	var out []string
	for d := range c.dirs {
		if parent(d) == dir {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// parent is the directory of p, "" for the root.
func parent(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

func (c *checker) readFile(p string) ([]byte, bool) {
	b, err := fs.ReadFile(c.fsys, p)
	if err != nil {
		c.fail(fmt.Errorf("reading %s: %w", p, err))
		return nil, false
	}
	return b, true
}

// ignored says whether a file is outside every layout rule and allowed to
// be: the dataset.yaml and manifest.json, README files at the root, and
// hidden files (.DS_Store, .gitignore) anywhere.
func ignored(p string) bool {
	if !IsDataFile(p) || (!strings.Contains(p, "/") && strings.HasPrefix(strings.ToUpper(p), "README")) {
		return true
	}
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, ".") {
			return true
		}
	}
	return false
}

var layoutHint = map[string]string{
	events.FormatImageFolder: "train/<class>/<image>, val/<class>/<image>",
	events.FormatYOLO:        "data.yaml, the image folders it names and their labels/ folders",
	events.FormatCOCO:        "annotations/instances_<split>.json and images/<split>/",
}

func (c *checker) checkUnclaimed() {
	if c.noUnclaimed {
		return
	}
	hint := layoutHint[c.format]
	if c.format == events.FormatCOCO && c.task == events.TaskCaptioning {
		hint = "annotations/captions_<split>.json and images/<split>/"
	}
	for _, f := range c.files {
		if !c.claimed[f] && !ignored(f) {
			c.add(f, "not part of the %s layout (%s)", c.format, hint)
		}
	}
}

// checkSpec parses the dataset.yaml at the root, when there is one, and
// checks that it describes the dataset being validated.
func (c *checker) checkSpec() {
	if !c.has(SpecName) {
		return
	}
	b, ok := c.readFile(SpecName)
	if !ok {
		return
	}
	s, err := ParseSpec(SpecName, b)
	if err != nil {
		for _, fe := range SpecProblems(err) {
			c.add(fe.Field, "%s", fe.Reason)
		}
		return
	}
	c.spec = s
	if s.Task != c.task {
		c.add(s.at("task"), "task is %s, the dataset is being checked for %s", s.Task, c.task)
	}
	if s.Format != c.format {
		c.add(s.at("format"), "format is %s, the dataset is being checked as %s", s.Format, c.format)
	}
	if s.Files > 0 && s.Files != c.sum.Files {
		c.add(s.at("files"), "files: %d data files declared, %d found", s.Files, c.sum.Files)
	}
	if s.Bytes > 0 && s.Bytes != c.sum.Bytes {
		c.add(s.at("bytes"), "bytes: %d bytes of data files declared, %d found", s.Bytes, c.sum.Bytes)
	}
}

// checkSpecData compares the classes of the dataset.yaml with the
// dataset's own: as sets for ImageFolder (whose label order is the sorted
// folder names anyway), in order for YOLO and COCO, whose files fix the
// label order.
func (c *checker) checkSpecData() {
	if c.spec == nil || len(c.spec.Classes) == 0 || c.sum.Classes == nil {
		return
	}
	want, got := c.spec.Classes, c.sum.Classes
	at := c.spec.at("classes")
	if c.format != events.FormatImageFolder {
		if !slices.Equal(want, got) {
			c.add(at, "classes: dataset.yaml lists [%s], the dataset's classes in label order are [%s]", strings.Join(want, ", "), strings.Join(got, ", "))
		}
		return
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			c.add(at, "classes: %q has no folder in train/", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			c.add(at, "classes: train/%s/ is not listed", g)
		}
	}
}

// SpecProblems turns an error of ParseSpec into field errors: one for
// each problem, Field "file:line" (or the file when the line is unknown).
func SpecProblems(err error) []events.FieldError {
	var out []events.FieldError
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var se *strictyaml.Error
		if errors.As(err, &se) {
			field := se.File
			if se.Line > 0 {
				field = fmt.Sprintf("%s:%d", se.File, se.Line)
			}
			out = append(out, events.FieldError{Field: field, Reason: se.Reason})
			return
		}
		out = append(out, events.FieldError{Field: SpecName, Reason: err.Error()})
	}
	if err != nil {
		walk(err)
	}
	return out
}
