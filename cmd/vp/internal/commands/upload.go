package commands

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/functions/gateway/client"
	"github.com/vision-platform/vp/internal/dataset"
)

func newUploadCmd() *cobra.Command {
	g := &gatewayFlags{}
	var req api.UploadRequest
	var trainModel string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "upload DIR",
		Short: "Upload a dataset folder straight to the store through the gateway's presigned URLs",
		Long: `Uploads every file of DIR (large ones in parts) through presigned URLs the
gateway gives, then the dataset.yaml the gateway writes (declaring the files
and bytes), after which the intake takes over. Run it again after it was cut
short: files and parts the store holds already are not sent again.

A dataset.yaml in DIR gives the task, format, classes and train block; the
flags override it.`,
		Example: `  vp upload ./cats --dataset cats --task classification --format imagefolder
  vp upload ./cats --dataset cats --train torchvision/resnet18`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			dir := args[0]
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("%s is not a folder", dir)
			}
			r := req
			if b, err := os.ReadFile(filepath.Join(dir, dataset.SpecName)); err == nil {
				spec, err := dataset.ParseSpec(filepath.Join(dir, dataset.SpecName), b)
				if err != nil {
					return err
				}
				fill(&r.Name, spec.Name)
				fill(&r.Task, spec.Task)
				fill(&r.Format, spec.Format)
				if r.Classes == nil {
					r.Classes = spec.Classes
				}
				r.Retrain = r.Retrain || spec.Retrain
				if spec.Train != nil && trainModel == "" {
					r.Train = &api.Train{Model: spec.Train.Model, Hyperparameters: events.Hyperparameters(spec.Train.Hyperparameters),
						Resources: events.Resources(spec.Train.Resources)}
				}
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if trainModel != "" {
				r.Train = &api.Train{Model: trainModel}
			}
			switch {
			case r.Name == "":
				return errors.New("--dataset: required (or name: in DIR/dataset.yaml)")
			case r.Task == "":
				return errors.New("--task: required (or task: in DIR/dataset.yaml)")
			case r.Format == "":
				return errors.New("--format: required (or format: in DIR/dataset.yaml)")
			}
			bar := newBar(cmd.ErrOrStderr(), quiet)
			up, err := c.Upload(cmd.Context(), dir, r, client.UploadOptions{Progress: bar.update})
			bar.done()
			if err != nil {
				return flagNames(err, map[string]string{"name": "--dataset", "version": "--version", "task": "--task", "format": "--format",
					"train.model": "--train", "classes": "--classes"})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s\n", up.Bucket, up.Prefix)
			return nil
		},
	}
	g.add(cmd)
	f := cmd.Flags()
	f.StringVar(&req.Name, "dataset", "", "the dataset's name (required, or name: in DIR/dataset.yaml)")
	f.StringVar(&req.Version, "version", "", "a version: uploads to NAME/VERSION/ (a name holds one dataset)")
	f.StringVar(&req.Task, "task", "", "classification, detection, segmentation or pose")
	f.StringVar(&req.Format, "format", "", "imagefolder, yolo or coco")
	f.StringSliceVar(&req.Classes, "classes", nil, "class names, in label order")
	f.StringVar(&trainModel, "train", "", "train this model (framework/name) once the dataset is complete")
	f.BoolVar(&req.Retrain, "retrain", false, "train again even when identical content was trained on before")
	f.BoolVar(&quiet, "quiet", false, "no progress bar")
	return cmd
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// bar draws an upload's progress on one line of w, at most ten times a
// second.
type bar struct {
	mu    sync.Mutex
	w     io.Writer
	quiet bool
	last  time.Time
	p     client.UploadProgress
	drawn bool
}

func newBar(w io.Writer, quiet bool) *bar { return &bar{w: w, quiet: quiet} }

func (b *bar) update(p client.UploadProgress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.p = p
	if b.quiet || time.Since(b.last) < 100*time.Millisecond && p.BytesDone < p.Bytes {
		return
	}
	b.last = time.Now()
	b.draw()
}

func (b *bar) draw() {
	p := b.p
	frac := 1.0
	if p.Bytes > 0 {
		frac = float64(p.BytesDone) / float64(p.Bytes)
	}
	const width = 30
	n := int(frac * width)
	line := fmt.Sprintf("\r[%s%s] %3.0f%% %s/%s, %d/%d files", strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100,
		byteSize(p.BytesDone), byteSize(p.Bytes), p.FilesDone, p.Files)
	if p.Skipped > 0 {
		line += fmt.Sprintf(" (%s there already)", byteSize(p.Skipped))
	}
	fmt.Fprint(b.w, line)
	b.drawn = true
}

func (b *bar) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.quiet {
		return
	}
	b.draw()
	fmt.Fprintln(b.w)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
