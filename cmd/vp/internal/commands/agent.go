package commands

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/images/agent"
)

// ExitError ends vp with an exit code of its own: the run agent's.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit code %d", e.Code) }

// ExitCode is the process exit code for what a command returned: 0 for
// nil, an *ExitError's code, 1 for any other error.
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 1
}

// newAgentCmd is vp-agent inside vp, so that the process executor can run
// this binary as the agent: the same flags (parsed by the agent itself,
// hence no cobra flags), environment and exit codes.
func newAgentCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "agent [--event FILE] [--workdir DIR] [--log-format json|console]",
		Short: "Run the run agent (vp-agent): one training run from its run.started event",
		Long: `Run the run agent, as the framework images' vp-agent does: read the run.started
event (VP_RUN_EVENT, else --event FILE, '-' for stdin), download and check the
dataset, run the training adapter, report run.progress and run.finished to
K_SINK (standard output without it) and keep the outputs in object storage
(VP_S3_ENDPOINT, VP_S3_ACCESS_KEY, VP_S3_SECRET_KEY, VP_S3_SECURE).

Exit codes: 0 succeeded, 1 failed, 2 bad request or setup, 143 cancelled.`,
		DisableFlagParsing: true,
		SilenceErrors:      true, // the agent has said why on stderr
		SilenceUsage:       true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := agent.Main(cmd.Context(), args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()); code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
}
