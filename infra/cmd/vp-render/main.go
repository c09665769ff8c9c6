// Command vp-render renders the platform's Knative and Kubernetes
// manifests (package infra) from the functions' func.yaml into infra/. vp
// deploy render runs it (go run, in infra/): it links Knative's and
// Kubernetes' API types, which vp leaves out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "vp-render:", err)
		os.Exit(1)
	}
}
