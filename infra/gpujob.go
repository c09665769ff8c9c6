package infra

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gpu-runner/executor"
	"github.com/vision-platform/vp/functions/gpu-runner/executor/kubernetes"
)

// exampleRun is the run the GPU Job template shows: a resnet50 on 2 GPUs
// with the torchvision image.
func (r *renderer) exampleRun() (executor.Run, error) {
	const id = "run-0123456789abcdef0123"
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("an example dataset")))
	hp := events.Hyperparameters{Epochs: 30, BatchSize: 64, LearningRate: 0.01}
	model := events.ModelRef{Framework: "torchvision", Name: "resnet50"}
	image := r.o.registry + "/torchvision@" + r.o.placeholder
	res := events.Resources{GPUs: 2, CPU: "8", Memory: "32Gi"}
	ev, err := events.New(context.Background(), "/vp/gpu-runner", events.RunStartedData{
		Job: events.JobRequestedData{ID: events.JobID(digest, model, hp), Dataset: events.DatasetRef{Bucket: "datasets", Prefix: "cats/", Digest: digest,
			Task: "classification", Format: "imagefolder"}, Model: model, Hyperparameters: hp, Resources: res},
		RunID: id, Image: image, Executor: executor.Kubernetes, Output: "s3://runs/" + id + "/",
	}, events.WithTime(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)),
		events.WithExtension(events.ExtTraceparent, "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"))
	if err != nil {
		return executor.Run{}, fmt.Errorf("making the example run: %w", err)
	}
	return executor.Run{ID: id, Event: ev, GPUs: res.GPUs, CPU: res.CPU, Memory: res.Memory, Image: image,
		// What the gpu-runner passes the agent from its own settings
		// (VP_S3_ACCESS_KEY and VP_S3_SECRET_KEY too, left out here).
		Env: []string{
			"VP_S3_ENDPOINT=" + r.o.minio.Endpoint,
			fmt.Sprintf("VP_S3_SECURE=%t", r.o.minio.Secure),
			"K_SINK=" + r.gpuIngress(),
		}}, nil
}

// gpuIngress is K_SINK in the gpu overlay: the Kafka broker's ingress.
func (r *renderer) gpuIngress() string { return Ingress(KafkaBroker, r.o.namespace, DefaultBroker) }

// gpuJobTemplate is what the gpu-runner creates for one run with the
// kubernetes executor, made by the executor itself (Manifests) with the gpu
// overlay's placement: the Job (nvidia.com/gpu limits, node selector,
// tolerations, K_SINK to the broker's ingress) and the Secret that carries
// its run.started event.
func (r *renderer) gpuJobTemplate() ([]any, error) {
	run, err := r.exampleRun()
	if err != nil {
		return nil, err
	}
	k := &kubernetes.Executor{Namespace: r.o.namespace, NodeSelector: r.o.placement.NodeSelector, Tolerations: r.o.placement.Tolerations}
	job, secret, err := k.Manifests(run)
	if err != nil {
		return nil, fmt.Errorf("making the GPU Job template: %w", err)
	}
	return []any{job, secret}, nil
}

// placementConfig is the placement as the kubernetes executor reads it
// (VP_JOB_NODE_SELECTOR, VP_JOB_TOLERATIONS: JSON).
func (r *renderer) placementConfig() (map[string]string, error) {
	out := map[string]string{}
	p := r.o.placement
	if len(p.NodeSelector) > 0 {
		b, err := json.Marshal(p.NodeSelector)
		if err != nil {
			return nil, fmt.Errorf("encoding the node selector: %w", err)
		}
		out[JobNodeSelector] = string(b)
	}
	if len(p.Tolerations) > 0 {
		b, err := json.Marshal(p.Tolerations)
		if err != nil {
			return nil, fmt.Errorf("encoding the tolerations: %w", err)
		}
		out[JobTolerations] = string(b)
	}
	return out, nil
}
