package commands

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/local/ociregistry"
	"github.com/vision-platform/vp/local/up"
)

func newRegistryCmd(rf *rootFlags) *cobra.Command {
	var dir, addr string
	var readHeader, idle, progress, purgeAge, purgeInterval time.Duration
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run the embedded OCI registry alone (blobs and manifests on disk)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			durations := []struct {
				flag string
				d    time.Duration
				opt  func(time.Duration) ociregistry.Option
			}{
				{"--read-header-timeout", readHeader, ociregistry.WithReadHeaderTimeout},
				{"--idle-timeout", idle, ociregistry.WithIdleTimeout},
				{"--progress-timeout", progress, ociregistry.WithProgressTimeout},
				{"--upload-purge-age", purgeAge, ociregistry.WithUploadPurgeAge},
				{"--upload-purge-interval", purgeInterval, ociregistry.WithUploadPurgeInterval},
			}
			var opts []ociregistry.Option
			for _, f := range durations {
				if f.d <= 0 {
					return fmt.Errorf("%s: %s is not positive", f.flag, f.d)
				}
				opts = append(opts, f.opt(f.d))
			}
			log, err := stderrLogger(rf)
			if err != nil {
				return err
			}
			return up.RunRegistry(cmd.Context(), dir, addr, log, opts...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "data", "", "storage directory (required)")
	f.StringVar(&addr, "addr", "127.0.0.1:5000", "listen address")
	f.DurationVar(&readHeader, "read-header-timeout", ociregistry.DefaultReadHeaderTimeout, "longest time to read a request's headers")
	f.DurationVar(&idle, "idle-timeout", ociregistry.DefaultIdleTimeout, "close a keep-alive connection idle this long")
	f.DurationVar(&progress, "progress-timeout", ociregistry.DefaultProgressTimeout, "cut a request body or response that moves no byte for this long (the deadline moves with every byte)")
	f.DurationVar(&purgeAge, "upload-purge-age", ociregistry.DefaultUploadPurgeAge, "remove an upload that has had no activity for this long")
	f.DurationVar(&purgeInterval, "upload-purge-interval", ociregistry.DefaultUploadPurgeInterval, "how often abandoned uploads are looked for (also at start)")
	_ = cmd.MarkFlagRequired("data")
	return cmd
}
