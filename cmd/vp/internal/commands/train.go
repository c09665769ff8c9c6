package commands

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/functions/gateway/api"
)

func newTrainCmd() *cobra.Command {
	g := &gatewayFlags{}
	var req api.JobRequest
	var key string
	var follow bool
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Start a job: train a model of the catalog on an uploaded dataset",
		Long: `Asks the gateway for a job (job.requested). The model, the dataset and the
hyperparameters are checked against the catalog first; hyperparameters left
out take the model's recommended values. The same dataset, model and
hyperparameters are the same job: asking again starts nothing new.`,
		Example: `  vp train --model torchvision/resnet18 --dataset cats
  vp train --model timm/resnet18 --dataset cats --epochs 20 --batch-size 64 --follow`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if req.Model == "" || !strings.Contains(req.Model, "/") {
				return fmt.Errorf("--model: %q is not framework/name (vp models lists them)", req.Model)
			}
			if req.Dataset.Name == "" {
				return fmt.Errorf("--dataset: required (vp datasets are listed by the console and GET /api/v1/datasets)")
			}
			acc, err := c.Train(cmd.Context(), req, key)
			if err != nil {
				return flagNames(err, trainFlags)
			}
			fmt.Fprintln(cmd.OutOrStdout(), acc.JobID)
			if !acc.Created {
				fmt.Fprintf(cmd.ErrOrStderr(), "the job was asked for before (%s); nothing new started\n", acc.State)
			}
			if follow {
				return followJob(cmd.Context(), c, acc.JobID, cmd.ErrOrStderr())
			}
			return nil
		},
	}
	g.add(cmd)
	f := cmd.Flags()
	f.StringVar(&req.Model, "model", "", "the model, framework/name (required)")
	f.StringVar(&req.Dataset.Name, "dataset", "", "the uploaded dataset's name (required; its latest version)")
	f.IntVar(&req.Hyperparameters.Epochs, "epochs", 0, "epochs (default: the model's recommended)")
	f.IntVar(&req.Hyperparameters.BatchSize, "batch-size", 0, "batch size (default: the model's recommended)")
	f.Float64Var(&req.Hyperparameters.LearningRate, "learning-rate", 0, "learning rate (default: the model's recommended)")
	f.IntVar(&req.Hyperparameters.ImageSize, "image-size", 0, "input side in pixels (default: the model's)")
	f.Int64Var(&req.Hyperparameters.Seed, "seed", 0, "random seed")
	f.BoolVar(&req.Hyperparameters.Pretrained, "pretrained", false, "start from pretrained weights")
	f.IntVar(&req.Resources.GPUs, "gpus", 0, "GPUs (0: CPU)")
	f.StringVar(&req.Resources.Executor, "executor", "", "process, docker or kubernetes (default: the gpu-runner's choice)")
	f.StringVar(&key, "idempotency-key", "", "a key that makes a retry of this request start nothing new")
	f.BoolVar(&follow, "follow", false, "follow the job's events until it ends")
	return cmd
}

// trainFlags names the flag of each field the gateway names in a job.
var trainFlags = map[string]string{
	"model": "--model", "dataset": "--dataset", "dataset.name": "--dataset",
	"hyperparameters.epochs": "--epochs", "hyperparameters.batchSize": "--batch-size",
	"hyperparameters.learningRate": "--learning-rate", "hyperparameters.imageSize": "--image-size",
	"resources.gpus": "--gpus", "resources.executor": "--executor", "Idempotency-Key": "--idempotency-key",
}
