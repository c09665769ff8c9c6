package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/vision-platform/vp/events"
)

// Exit codes of the agent's command line.
const (
	ExitSucceeded  = 0
	ExitFailed     = 1
	ExitBadRequest = 2 // bad flags, request or setup
	ExitCancelled  = 143
)

// Main is the agent's command line, vp-agent's and `vp agent`'s: args are
// its flags (without the program's name): --event FILE (the run.started
// event; '-' for stdin; default where Knative's JobSink mounts it; the
// VP_RUN_EVENT variable wins over both), --workdir DIR (default
// VP_WORKDIR, else /workspace) and --log-format json|console. The rest
// of its settings come from the environment (ConfigFromEnv). It logs to
// stderr, prints its events to stdout when there is no K_SINK, and
// returns the exit code: 0 succeeded, 1 failed, 2 bad flags, request or
// setup, 143 cancelled (ctx ended: SIGTERM).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vp-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	eventPath := fs.String("event", JobSinkPath, "file holding the run.started event ('-' for stdin)")
	workDir := fs.String("workdir", envOr("VP_WORKDIR", "/workspace"), "working directory")
	logFormat := fs.String("log-format", "json", "log format: json or console")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitSucceeded
		}
		return ExitBadRequest
	}
	log, err := Logger(stderr, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "vp-agent:", flagError(err))
		return ExitBadRequest
	}
	req, err := LoadRequest(*eventPath, stdin)
	if err != nil {
		log.Error().Err(err).Msg("loading the run request")
		return ExitBadRequest
	}
	cfg, err := ConfigFromEnv(*workDir, log)
	if err != nil {
		log.Error().Err(err).Msg("configuring")
		return ExitBadRequest
	}
	cfg.Sink.Out = stdout
	fin, err := Run(ctx, cfg, req)
	if errors.Is(err, ErrBadRequest) {
		log.Error().Err(err).Msg("bad run request")
		return ExitBadRequest
	}
	switch fin.Status {
	case events.StatusSucceeded:
		return ExitSucceeded
	case events.StatusCancelled:
		return ExitCancelled
	}
	return ExitFailed
}

// flags names the flag of each agent setting a *FieldError can name.
var flags = map[string]string{"LogFormat": "--log-format"}

// flagError says err in the words of the command line: a *FieldError
// names its flag.
func flagError(err error) error {
	var fe *FieldError
	if errors.As(err, &fe) && flags[fe.Field] != "" {
		fe2 := *fe
		fe2.Field = flags[fe.Field]
		return &fe2
	}
	return err
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
