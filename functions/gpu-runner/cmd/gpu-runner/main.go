// Command gpu-runner is the gpu-runner function's binary, made as func's Go
// scaffolding makes it: func-go serves the function on LISTEN_ADDRESS
// (CloudEvents on /, /health/readiness and /health/liveness) and starts it
// with its environment as its settings. It links the kubernetes executor, as
// the func CLI's build with -tags=kubernetes does: in a pod,
// VP_EXECUTOR=auto (or kubernetes) launches each run as a Job.
package main

import (
	"fmt"
	"os"

	fce "knative.dev/func-go/cloudevents"

	gpurunner "github.com/vision-platform/vp/functions/gpu-runner"
	"github.com/vision-platform/vp/functions/gpu-runner/executor/kubernetes"
)

func main() {
	if err := fce.Start(gpurunner.New(gpurunner.WithChooseOptions(kubernetes.InClusterOption()))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
