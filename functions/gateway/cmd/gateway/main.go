// Command gateway is the gateway function's binary, made as func's Go
// scaffolding makes it: func-go serves the function on LISTEN_ADDRESS
// (plain HTTP on /: the API, the console and the broker's deliveries;
// /health/readiness and /health/liveness) and starts it with its
// environment as its settings.
package main

import (
	"fmt"
	"os"

	fhttp "knative.dev/func-go/http"

	"github.com/vision-platform/vp/functions/gateway"
)

func main() {
	if err := fhttp.Start(gateway.New()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
