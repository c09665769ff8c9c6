// Command run-recorder is the run-recorder function's binary, made as func's
// Go scaffolding makes it: func-go serves the function on LISTEN_ADDRESS
// (CloudEvents on /, /health/readiness and /health/liveness) and starts it
// with its environment as its settings.
package main

import (
	"fmt"
	"os"

	fce "knative.dev/func-go/cloudevents"

	runrecorder "github.com/vision-platform/vp/functions/run-recorder"
)

func main() {
	if err := fce.Start(runrecorder.New()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
