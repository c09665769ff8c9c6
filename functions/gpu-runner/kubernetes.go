//go:build kubernetes

package gpurunner

import "github.com/vision-platform/vp/functions/gpu-runner/executor/kubernetes"

// Built with -tags kubernetes (the func.yaml build does), the function can
// launch runs as Kubernetes Jobs: VP_EXECUTOR=auto picks them in a pod.
func init() {
	defaultChooseOptions = append(defaultChooseOptions, kubernetes.InClusterOption())
}
