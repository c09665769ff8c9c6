// Command vp is the Vision Platform command-line tool.
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
	defer stop()
	if err := commands.New().ExecuteContext(ctx); err != nil {
		os.Exit(1)
	}
}
