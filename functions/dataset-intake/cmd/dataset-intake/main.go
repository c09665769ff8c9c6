// Command dataset-intake is the dataset-intake function's binary, made as
// func's Go scaffolding makes it: func-go serves the function on
// LISTEN_ADDRESS (plain HTTP on / (MinIO's webhook posts there),
// /health/readiness and /health/liveness) and starts it with its environment
// as its settings.
package main

import (
	"fmt"
	"os"

	fhttp "knative.dev/func-go/http"

	datasetintake "github.com/vision-platform/vp/functions/dataset-intake"
)

func main() {
	if err := fhttp.Start(datasetintake.New()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
