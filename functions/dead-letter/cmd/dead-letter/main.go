// Command dead-letter is the dead-letter function's binary, made as func's
// Go scaffolding makes it: func-go serves the function on LISTEN_ADDRESS
// (CloudEvents on /, /health/readiness and /health/liveness) and starts it
// with its environment as its settings.
package main

import (
	"fmt"
	"os"

	fce "knative.dev/func-go/cloudevents"

	deadletter "github.com/vision-platform/vp/functions/dead-letter"
)

func main() {
	if err := fce.Start(deadletter.New()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
