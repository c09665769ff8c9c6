package demo

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Times are the moments of a demo: the upload's start and end (this
// machine's clock), and the times of the platform's events (the clocks of
// the functions that made them).
type Times struct {
	UploadStart, UploadEnd time.Time
	// Uploaded is dataset.uploaded: dataset-intake found it complete.
	Uploaded time.Time
	// Requested is job.requested (job-trigger), Built image.built
	// (image-builder), Started run.started (gpu-runner), FirstProgress the
	// first run.progress (the agent, once training runs), Finished
	// run.finished.
	Requested, Built, Started, FirstProgress, Finished time.Time
	// Ended is the job's last event: run.finished, or image.failed, or its
	// cancellation (zero: Finished).
	Ended time.Time
}

// Phase is a share of a demo's time.
type Phase struct {
	Name  string
	Took  time.Duration
	Share float64 // of the whole, 0 to 1
	What  string
}

// Total is from the upload's start to the job's end.
func (t Times) Total() time.Duration {
	if t.Ended.IsZero() {
		return since(t.UploadStart, t.Finished)
	}
	return since(t.UploadStart, t.Ended)
}

// Phases split the demo's time four ways: upload (the files to MinIO),
// queue (the platform passing the work on: MinIO's webhook, the intake and
// job-trigger up to job.requested, and the gpu-runner's launch from
// image.built to run.started), image (job.requested to image.built) and
// training (run.started to run.finished: the container's start, the
// dataset's download, the epochs, the outputs' upload).
func (t Times) Phases() []Phase {
	total := t.Total()
	ps := []Phase{
		{Name: "upload", Took: since(t.UploadStart, t.UploadEnd), What: "the files to MinIO"},
		{Name: "queue", Took: since(t.UploadEnd, t.Requested) + since(t.Built, t.Started),
			What: "upload done → job.requested (webhook, intake, job-trigger), image.built → run.started"},
		{Name: "image", Took: since(t.Requested, t.Built), What: "job.requested → image.built"},
		{Name: "training", Took: since(t.Started, t.Finished), What: "run.started → run.finished"},
	}
	for i := range ps {
		if total > 0 {
			ps[i].Share = float64(ps[i].Took) / float64(total)
		}
	}
	if !t.FirstProgress.IsZero() && !t.Started.IsZero() {
		ps[3].What += fmt.Sprintf(" (first epoch's metrics %s after the launch)", round(since(t.Started, t.FirstProgress)))
	}
	return ps
}

// Print writes the phases as a table.
func (t Times) Print(w io.Writer) error {
	fmt.Fprintf(w, "\nWhere the time went (upload start → the job's end: %s):\n", round(t.Total()))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, p := range t.Phases() {
		fmt.Fprintf(tw, "  %s\t%s\t%.0f%%\t  %s\n", p.Name, round(p.Took), p.Share*100, p.What)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var hops []string
	for _, h := range []struct {
		name string
		at   time.Time
	}{{"uploaded", t.UploadEnd}, {"dataset.uploaded", t.Uploaded}, {"job.requested", t.Requested}, {"image.built", t.Built},
		{"run.started", t.Started}, {"first run.progress", t.FirstProgress}, {"run.finished", t.Finished}} {
		if !h.at.IsZero() {
			hops = append(hops, fmt.Sprintf("%s +%s", h.name, round(since(t.UploadStart, h.at))))
		}
	}
	_, err := fmt.Fprintf(w, "  hops: %s\n", strings.Join(hops, ", "))
	return err
}

// since is b-a, or 0 when either is unknown or b is before a (clocks of
// different machines).
func since(a, b time.Time) time.Duration {
	if a.IsZero() || b.IsZero() || b.Before(a) {
		return 0
	}
	return b.Sub(a)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
