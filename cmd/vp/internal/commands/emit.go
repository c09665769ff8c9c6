package commands

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/events/emit"
)

func newEmitCmd(_ *rootFlags) *cobra.Command {
	var o emit.Options
	var dataFile string
	cmd := &cobra.Command{
		Use:   "emit",
		Short: "Send one CloudEvent to a broker",
		Long: `Send one CloudEvent to a broker's ingress. For the platform's own types
(dev.visionplatform.*) the data is validated first and id, subject, jobid,
dataschema and traceparent are filled in as the functions would.`,
		Example: `  vp emit --type dev.visionplatform.job.requested --data-file job.json
  echo '{"hello":"world"}' | vp emit --type com.example.hello --source /me --data-file -
  vp emit --type com.example.ping --source /me --ext priority=5 --data '{}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataFile != "" {
				if o.Data != "" {
					return fmt.Errorf("--data and --data-file exclude each other")
				}
				var b []byte
				var err error
				if dataFile == "-" {
					b, err = io.ReadAll(cmd.InOrStdin())
					o.DataName = "stdin"
				} else {
					b, err = os.ReadFile(dataFile)
					o.DataName = dataFile
				}
				if err != nil {
					return fmt.Errorf("reading data: %w", err)
				}
				o.Data = string(b)
			}
			e, err := emit.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := emit.Send(cmd.Context(), o.Broker, e, o.Structured); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), e.ID())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Broker, "broker", envOr("VP_BROKER", "http://127.0.0.1:8080/default/default"), "broker ingress URL (env VP_BROKER)")
	f.StringVar(&o.Type, "type", "", "event type (required)")
	f.StringVar(&o.Source, "source", "/vp/cli", "event source")
	f.StringVar(&o.Subject, "subject", "", "event subject")
	f.StringVar(&o.ID, "id", "", "event id (default: the payload's deterministic id, else a new UUID)")
	f.StringVar(&o.Data, "data", "", "event data, inline")
	f.StringVar(&dataFile, "data-file", "", "read event data from this file ('-' for stdin)")
	f.StringVar(&o.ContentType, "content-type", "application/json", "datacontenttype of the data")
	f.StringArrayVar(&o.Extensions, "ext", nil, "extension attribute name=value (repeatable)")
	f.BoolVar(&o.Structured, "structured", false, "send in structured mode instead of binary")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
