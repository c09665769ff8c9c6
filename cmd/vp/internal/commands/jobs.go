package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/client"
	"github.com/vision-platform/vp/internal/ledger"
)

// flagNames rewrites a gateway error naming request fields to name the
// flags that set them.
func flagNames(err error, flags map[string]string) error {
	var ge *client.Error
	if !errors.As(err, &ge) || len(ge.Body.Fields) == 0 {
		return err
	}
	var parts []string
	for _, f := range ge.Body.Fields {
		name := f.Field
		if fl, ok := flags[name]; ok {
			name = fl
		}
		parts = append(parts, name+": "+f.Reason)
	}
	return fmt.Errorf("%s (the gateway answered %d %s)", strings.Join(parts, "; "), ge.Status, ge.Body.Code)
}

func newJobsCmd() *cobra.Command {
	g := &gatewayFlags{}
	var q client.JobQuery
	var all bool
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List jobs, newest first",
		Example: `  vp jobs
  vp jobs --state running
  vp jobs --model timm/resnet18 --dataset cats --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			if g.output == "table" {
				fmt.Fprintln(w, "JOB\tSTATE\tMODEL\tDATASET\tCREATED\tMETRICS")
			}
			for {
				page, err := c.Jobs(cmd.Context(), q)
				if err != nil {
					return flagNames(err, map[string]string{"state": "--state", "limit": "--limit", "cursor": "--cursor"})
				}
				if g.output == "json" {
					if err := printJSON(out, page); err != nil {
						return err
					}
				} else {
					for _, j := range page.Jobs {
						ds := ""
						if j.Dataset != nil {
							ds = j.Dataset.Bucket + "/" + j.Dataset.Prefix
						}
						state := j.State
						if j.Reason != "" {
							state += ": " + firstLine(j.Reason, 40)
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", j.JobID, state, j.Model, ds, j.Created.Local().Format(time.DateTime), metrics(j.Metrics))
					}
				}
				if !all || page.NextCursor == "" {
					if err := w.Flush(); err != nil {
						return err
					}
					if page.NextCursor != "" && g.output == "table" {
						fmt.Fprintf(out, "more: --cursor %s (or --all)\n", page.NextCursor)
					}
					return nil
				}
				q.Cursor = page.NextCursor
			}
		},
	}
	g.add(cmd)
	g.addOutput(cmd)
	f := cmd.Flags()
	f.StringVar(&q.State, "state", "", "only jobs in this state (requested, queued, running, cancelling, succeeded, failed, cancelled)")
	f.StringVar(&q.Model, "model", "", "only jobs of this model (framework/name)")
	f.StringVar(&q.Dataset, "dataset", "", "only jobs on this dataset (name, prefix or digest)")
	f.IntVar(&q.Limit, "limit", 0, "jobs per page (default: the gateway's, 50)")
	f.StringVar(&q.Cursor, "cursor", "", "start after this cursor (printed at the end of a page)")
	f.BoolVar(&all, "all", false, "every page")
	return cmd
}

func metrics(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%.4g", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func newJobCmd() *cobra.Command {
	g := &gatewayFlags{}
	var follow bool
	cmd := &cobra.Command{
		Use:   "job ID",
		Short: "Show a job: its state, lineage and timeline; --follow streams its events until it ends",
		Example: `  vp job job-0123456789abcdef0123
  vp job job-0123456789abcdef0123 --follow`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			id := args[0]
			if follow {
				return followJob(cmd.Context(), c, id, cmd.OutOrStdout())
			}
			s, err := c.Job(cmd.Context(), id)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), s)
			}
			printJob(cmd.OutOrStdout(), s)
			return nil
		},
	}
	g.add(cmd)
	g.addOutput(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the job's events (Server-Sent Events) until it ends")
	return cmd
}

func printJob(out io.Writer, s ledger.JobStatus) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	state := s.State
	if s.Reason != "" {
		state += " (" + s.Reason + ")"
	}
	fmt.Fprintf(w, "job\t%s\n", s.JobID)
	fmt.Fprintf(w, "state\t%s\n", state)
	if s.Model != nil {
		fmt.Fprintf(w, "model\t%s\n", s.Model)
	}
	if s.Dataset != nil {
		fmt.Fprintf(w, "dataset\t%s/%s %s\n", s.Dataset.Bucket, s.Dataset.Prefix, s.Dataset.Digest)
	}
	if s.Hyperparameters != nil {
		h := s.Hyperparameters
		fmt.Fprintf(w, "hyperparameters\t%d epochs, batch %d, lr %g, image size %d\n", h.Epochs, h.BatchSize, h.LearningRate, h.ImageSize)
	}
	if s.Image != "" {
		fmt.Fprintf(w, "image\t%s\n", s.Image)
	}
	if s.RunID != "" {
		fmt.Fprintf(w, "run\t%s (%s)\n", s.RunID, s.Executor)
	}
	if s.Progress != nil {
		fmt.Fprintf(w, "progress\tepoch %d, step %d %s\n", s.Progress.Epoch, s.Progress.Step, metrics(s.Progress.Metrics))
	}
	if len(s.Metrics) > 0 {
		fmt.Fprintf(w, "metrics\t%s\n", metrics(s.Metrics))
	}
	for _, a := range s.Artifacts {
		fmt.Fprintf(w, "artifact\t%s (%d bytes)\n", a.Name, a.Size)
	}
	fmt.Fprintln(w, "timeline\t")
	for _, e := range s.Timeline {
		fmt.Fprintf(w, "  %s\t%s  %s\n", e.Time.Local().Format(time.DateTime), events.Type(e.Type).Short(), e.Source)
	}
	w.Flush()
}

// followJob prints each event of a job as it comes, until it ends; a job
// that ends failed or cancelled is an error.
func followJob(ctx context.Context, c *client.Client, id string, out io.Writer) error {
	final := ""
	reason := ""
	err := c.Follow(ctx, id, "", func(e client.Event) error {
		ce := e.CloudEvent
		line := ce.Time().Local().Format(time.TimeOnly) + "  " + e.Type
		p, derr := events.Decode(ce)
		if derr == nil {
			switch d := p.(type) {
			case *events.ImageBuiltData:
				line += "  " + d.Reference
				if d.CacheHit {
					line += " (cached)"
				}
			case *events.ImageFailedData:
				line += "  " + d.Reason + ": " + d.Message
				final, reason = ledger.StateFailed, d.Reason
			case *events.RunStartedData:
				line += "  " + d.RunID + " on " + d.Executor
			case *events.RunProgressData:
				line += fmt.Sprintf("  epoch %d step %d %s", d.Epoch, d.Step, metrics(d.Metrics))
			case *events.RunFinishedData:
				line += "  " + d.Status + " " + metrics(d.Metrics)
				if d.Reason != "" {
					line += " (" + d.Reason + ")"
				}
				final, reason = d.Status, d.Reason
			case *events.JobCancelledData:
				line += "  " + d.Reason
			}
		}
		_, err := fmt.Fprintln(out, line)
		return err
	})
	if err != nil {
		return err
	}
	switch final {
	case events.StatusFailed, events.StatusCancelled:
		return fmt.Errorf("job %s %s: %s", id, final, reason)
	}
	return nil
}
