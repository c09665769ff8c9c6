// Command job-trigger is the job-trigger function's binary, made as func's
// Go scaffolding makes it: func-go serves the function on LISTEN_ADDRESS
// (CloudEvents on /, /health/readiness and /health/liveness) and starts it
// with its environment as its settings.
package main

import (
	"fmt"
	"os"

	fce "knative.dev/func-go/cloudevents"

	jobtrigger "github.com/vision-platform/vp/functions/job-trigger"
)

func main() {
	if err := fce.Start(jobtrigger.New()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
