package commands

import (
	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/local/up"
)

func newRegistryCmd(rf *rootFlags) *cobra.Command {
	var dir, addr string
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run the embedded OCI registry alone (blobs and manifests on disk)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := stderrLogger(rf)
			if err != nil {
				return err
			}
			return up.RunRegistry(cmd.Context(), dir, addr, log)
		},
	}
	cmd.Flags().StringVar(&dir, "data", "", "storage directory (required)")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:5000", "listen address")
	_ = cmd.MarkFlagRequired("data")
	return cmd
}
