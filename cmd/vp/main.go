package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vision-platform/vp/cmd/vp/internal/commands"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := commands.New().ExecuteContext(ctx)
	stop()
	os.Exit(commands.ExitCode(err))
}
