// Command image-builder is the image-builder function's binary, made as
// func's Go scaffolding makes it: func-go serves the function on
// LISTEN_ADDRESS (CloudEvents on /, /health/readiness and /health/liveness)
// and starts it with its environment as its settings.
package main

import (
	"fmt"
	"os"

	fce "knative.dev/func-go/cloudevents"

	imagebuilder "github.com/vision-platform/vp/functions/image-builder"
)

func main() {
	if err := fce.Start(imagebuilder.New()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
