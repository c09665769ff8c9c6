package commands

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/events/sender"
	deadletter "github.com/vision-platform/vp/functions/dead-letter"
	"github.com/vision-platform/vp/internal/objstore"
)

// parseWhen reads a time: RFC 3339 (2026-11-29T10:00:00Z), a date
// (2026-11-29, midnight UTC), or a duration back from now (90m, 2h, 3d).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := time.ParseDuration(days + "h"); err == nil && d >= 0 {
			return now.Add(-24 * d), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (2026-11-29T10:00:00Z, 2026-11-29) or a duration ago (90m, 2h, 3d)", s)
}

func newReplayCmd(_ *rootFlags) *cobra.Command {
	var bucket, broker, since, until string
	var types []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Send dead letters kept in object storage back to the broker",
		Long: `Send the events the broker gave up on, which the dead-letter function keeps in
object storage (bucket dead-letters, <date>/<id>-<hash>.json), back to the
broker's ingress, selected by type and by when they were kept. Knative's error
extensions (knativeerrordest, knativeerrorcode, knativeerrordata) and the hop
count are removed; an event given up on by several subscribers is sent once, and
the broker gives it to every trigger that matches. The object store is the one
VP_S3_ENDPOINT, VP_S3_ACCESS_KEY, VP_S3_SECRET_KEY and VP_S3_SECURE name.

Kept dead letters stay where they are. The local broker (vp up, vp broker) drops
an event whose source and id it took within its de-duplication window (10
minutes by default); a Knative broker keeps no such window.`,
		Example: `  vp replay --dry-run                                  # what would be sent
  vp replay --type run.finished --since 2h             # the run.finished events kept in the last 2 hours
  vp replay --since 2026-11-29 --until 2026-11-30T06:00:00Z --broker http://broker-ingress.knative-eventing.svc.cluster.local/vp/default`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			f := deadletter.Filter{Types: deadletter.ParseTypes(types)}
			var err error
			if f.Since, err = parseWhen(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if f.Until, err = parseWhen(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
				return fmt.Errorf("--since %s is not before --until %s", f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
			}
			store, err := objstore.FromEnv()
			if errors.Is(err, objstore.ErrNoEndpoint) {
				return fmt.Errorf("the object store: set VP_S3_ENDPOINT (and VP_S3_ACCESS_KEY, VP_S3_SECRET_KEY): %w", err)
			}
			if err != nil {
				return err
			}
			o := deadletter.ReplayOptions{DryRun: dryRun}
			if !dryRun {
				s, err := sender.New(broker)
				if err != nil {
					return fmt.Errorf("--broker: %w", err)
				}
				o.Sender = s
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "OUTCOME\tKEPT\tTYPE\tID\tFAILED AT\tSTATUS")
			o.Report = func(l deadletter.Letter, outcome deadletter.Outcome, err error) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", outcome, l.Kept.UTC().Format(time.RFC3339), l.Event.Type(), l.Event.ID(), l.Dest(), l.Code())
				if err != nil {
					fmt.Fprintf(tw, "\t%v\t\t\t\t\n", err)
				}
			}
			sum, err := deadletter.Replay(cmd.Context(), store, bucket, f, o)
			tw.Flush()
			verb, n := "sent", sum.Sent
			if dryRun {
				verb, n = "would send (dry run)", sum.Selected-sum.Duplicates
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d selected, %d %s, %d duplicates, %d failed\n", sum.Selected, n, verb, sum.Duplicates, sum.Failed)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&bucket, "bucket", deadletter.DefaultBucket, "the bucket the dead-letter function keeps them in")
	f.StringVar(&broker, "broker", envOr("VP_BROKER", "http://127.0.0.1:8080/default/default"), "broker ingress URL (env VP_BROKER)")
	f.StringArrayVar(&types, "type", nil, "event types to send (repeatable, comma-separated; run.finished means dev.visionplatform.run.finished); default all")
	f.StringVar(&since, "since", "", "only those kept at or after: RFC 3339, a date, or a duration ago (2h, 3d)")
	f.StringVar(&until, "until", "", "only those kept before: RFC 3339, a date, or a duration ago")
	f.BoolVar(&dryRun, "dry-run", false, "send nothing: list what would be sent")
	return cmd
}
