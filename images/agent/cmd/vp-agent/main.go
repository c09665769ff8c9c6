// Command vp-agent is the run agent of the framework images. It reads a
// run.started event (VP_RUN_EVENT, or --event, by default where Knative's
// JobSink mounts it), runs the training and reports by event to K_SINK.
//
// Exit codes: 0 succeeded, 1 failed, 2 bad request or setup, 143 cancelled.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/images/agent"
)

func main() {
	eventPath := flag.String("event", agent.JobSinkPath, "file holding the run.started event ('-' for stdin)")
	workDir := flag.String("workdir", envOr("VP_WORKDIR", "/workspace"), "working directory")
	logFormat := flag.String("log-format", "json", "log format: json or console")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, *eventPath, *workDir, *logFormat))
}

func run(ctx context.Context, eventPath, workDir, logFormat string) int {
	log, err := agent.Logger(os.Stderr, logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vp-agent:", flagError(err))
		return 2
	}
	req, err := agent.LoadRequest(eventPath, os.Stdin)
	if err != nil {
		log.Error().Err(err).Msg("loading the run request")
		return 2
	}
	cfg, err := agent.ConfigFromEnv(workDir, log)
	if err != nil {
		log.Error().Err(err).Msg("configuring")
		return 2
	}
	fin, err := agent.Run(ctx, cfg, req)
	if errors.Is(err, agent.ErrBadRequest) {
		log.Error().Err(err).Msg("bad run request")
		return 2
	}
	switch fin.Status {
	case events.StatusSucceeded:
		return 0
	case events.StatusCancelled:
		return 143
	}
	return 1
}

// flags names the flag of each agent setting a *agent.FieldError can name.
var flags = map[string]string{"LogFormat": "--log-format"}

// flagError says err in the words of the command line: a *agent.FieldError
// names its flag.
func flagError(err error) error {
	var fe *agent.FieldError
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
