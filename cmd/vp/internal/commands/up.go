package commands

import (
	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/local/up"
)

func newUpCmd(rf *rootFlags) *cobra.Command {
	var c up.Config
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the platform locally with embedded defaults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := stderrLogger(rf)
			if err != nil {
				return err
			}
			return up.Run(cmd.Context(), c, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.DataDir, "data", up.DefaultDataDir(), "where the platform keeps its state")
	f.StringVar(&c.BrokerAddr, "broker-addr", "127.0.0.1:8080", "broker listen address")
	f.StringVar(&c.DisplayAddr, "display-addr", "127.0.0.1:8089", "event display listen address")
	f.StringVar(&c.RegistryAddr, "registry-addr", "127.0.0.1:5000", "embedded OCI registry listen address")
	f.StringVar(&c.TriggersFile, "triggers", "", "extra Knative Trigger objects to add")
	return cmd
}
