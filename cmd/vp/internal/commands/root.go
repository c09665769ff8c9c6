package commands

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
	"github.com/spf13/cobra"
)

type rootFlags struct {
	logFormat string
	logLevel  string
}

// New returns the root command.
func New() *cobra.Command {
	rf := &rootFlags{}
	root := &cobra.Command{
		Use:           "vp",
		Short:         "Vision Platform: event-driven training",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.PersistentFlags().StringVar(&rf.logFormat, "log-format", "json", "log format: json or console")
	root.PersistentFlags().StringVar(&rf.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(newBrokerCmd(rf), newEmitCmd(rf), newUpCmd(rf), withFunctionImages(newImagesCmd(rf)), newRegistryCmd(rf), newAgentCmd(), newWeightsCmd(), newDeployCmd(rf), newReplayCmd(rf))
	root.AddCommand(newModelsCmd())
	root.AddCommand(newTrainCmd())
	root.AddCommand(newJobsCmd())
	root.AddCommand(newJobCmd())
	root.AddCommand(newUploadCmd())
	root.AddCommand(newArtifactsCmd())
	root.AddCommand(newDemoCmd())
	return root
}

// logger builds the process logger from the root flags.
func (rf *rootFlags) logger(w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(rf.logLevel)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("--log-level: %w", err)
	}
	switch rf.logFormat {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format: %q is not json or console", rf.logFormat)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// stderrLogger is the command's logger. The package-level zerolog logger,
// which knative.dev/func-go logs through, gets the same output at warn
// level: its start-up chatter stays out of vp up's log.
func stderrLogger(rf *rootFlags) (zerolog.Logger, error) {
	l, err := rf.logger(os.Stderr)
	if err == nil {
		zlog.Logger = l.Level(max(l.GetLevel(), zerolog.WarnLevel))
	}
	return l, err
}
