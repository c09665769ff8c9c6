package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vision-platform/vp/images/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := agent.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
