package commands

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/events/emit"
	"github.com/vision-platform/vp/events/sender"
)

// emitFlags names the flag of each emit.Options field a *emit.FieldError
// can name.
var emitFlags = map[string]string{"Type": "--type", "Extensions": "--ext"}

func newEmitCmd(_ *rootFlags) *cobra.Command {
	var o emit.Options
	var dataFile string
	cmd := &cobra.Command{
		Use:   "emit",
		Short: "Send one CloudEvent to a broker",
		Long: `Send one CloudEvent to a broker's ingress. For the platform's own types
(dev.visionplatform.*) the data is validated first and id, subject, jobid,
dataschema and traceparent are filled in as the functions would.

Delivery follows the platform's one retry policy (package events/sender): no
answer, 404, 408, 409, 425, 429 and 5xx (but 501 and 505) are tried again
with exponential backoff and jitter, up to 8 attempts within 30 s, honouring
Retry-After within that bound; any other answer is final.`,
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
			} else {
				o.DataName = "--data"
			}
			var opts []sender.Option
			if o.Structured {
				opts = append(opts, sender.WithStructured())
			}
			s, err := sender.New(o.Broker, opts...)
			if err != nil {
				return fmt.Errorf("--broker: %w", err)
			}
			e, err := emit.Build(cmd.Context(), o)
			var fe *emit.FieldError
			if errors.As(err, &fe) && emitFlags[fe.Field] != "" {
				flagErr := *fe
				flagErr.Field = emitFlags[fe.Field]
				return &flagErr
			}
			if err != nil {
				return err
			}
			if err := s.Send(cmd.Context(), e); err != nil {
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
