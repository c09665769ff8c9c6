package dataset

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vision-platform/vp/events"
)

// taskFormats is the one list of the tasks a dataset can be labelled for
// and the formats each can be stored in, the usual one first. The events
// package keeps its own enum of tasks and formats for the schemas; a test
// checks that the two agree.
var taskFormats = []struct {
	task    string
	formats []string
}{
	{events.TaskClassification, []string{events.FormatImageFolder}},
	{events.TaskDetection, []string{events.FormatYOLO, events.FormatCOCO}},
	{events.TaskSegmentation, []string{events.FormatYOLO, events.FormatCOCO}},
	{events.TaskPose, []string{events.FormatYOLO}},
	{events.TaskCaptioning, []string{events.FormatCOCO}},
}

// Tasks returns the tasks a dataset can be labelled for.
func Tasks() []string {
	out := make([]string, len(taskFormats))
	for i, tf := range taskFormats {
		out[i] = tf.task
	}
	return out
}

// AllFormats returns every dataset format, in the order first named.
func AllFormats() []string {
	var out []string
	for _, tf := range taskFormats {
		for _, f := range tf.formats {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// Formats returns the formats a dataset for task can be stored in, or nil
// for an unknown task.
func Formats(task string) []string {
	for _, tf := range taskFormats {
		if tf.task == task {
			return slices.Clone(tf.formats)
		}
	}
	return nil
}

// CheckTaskFormat names what is wrong with a task and format pair: an
// unknown task (on "task"), an unknown format, or a format the task cannot
// be trained from (on "format"). It returns nil for a good pair.
func CheckTaskFormat(task, format string) []events.FieldError {
	var out []events.FieldError
	formats := Formats(task)
	switch {
	case task == "":
		out = append(out, events.FieldError{Field: "task", Reason: "required (one of " + strings.Join(Tasks(), ", ") + ")"})
	case formats == nil:
		out = append(out, events.FieldError{Field: "task", Reason: fmt.Sprintf("%q is not one of %s", task, strings.Join(Tasks(), ", "))})
	}
	switch {
	case format == "":
		out = append(out, events.FieldError{Field: "format", Reason: "required (one of " + strings.Join(AllFormats(), ", ") + ")"})
	case !slices.Contains(AllFormats(), format):
		out = append(out, events.FieldError{Field: "format", Reason: fmt.Sprintf("%q is not one of %s", format, strings.Join(AllFormats(), ", "))})
	case formats != nil && !slices.Contains(formats, format):
		out = append(out, events.FieldError{Field: "format", Reason: fmt.Sprintf("%s does not fit task %s (%s takes %s)", format, task, task, strings.Join(formats, " or "))})
	}
	return out
}
