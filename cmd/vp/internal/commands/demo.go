package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/local/credentials"
	"github.com/vision-platform/vp/local/demo"
	"github.com/vision-platform/vp/local/up"
)

func newDemoCmd() *cobra.Command {
	var c demo.Config
	var data string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Train a model on a small generated dataset, live: upload, follow the job, say where the time went",
		Long: `Makes a small two-class ImageFolder dataset (new pixels each time, so each
demo is a new job), uploads it to the running platform's MinIO with a
dataset.yaml that asks for a training, follows the job through the gateway
(each event as it arrives), then prints the final metrics, the artifacts'
links, the job's page in the console, and where the time went: upload,
queue, image and training, from the events' times.

It runs against vp up or make compose-up, on vp up's addresses by default.
The MinIO credentials and the gateway token come from the flags, else from
the environment (VP_MINIO_USER, VP_MINIO_PASSWORD, VP_TOKEN), else from vp
up's credentials.json in --data (make compose-up gives compose the same).`,
		Example: `  vp demo
  vp demo --epochs 5 --images 32
  vp demo --minio 127.0.0.1:19000 --gateway http://127.0.0.1:18088 --token TOKEN --minio-user U --minio-password P`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := demoCredentials(&c, data); err != nil {
				return err
			}
			c.Out = cmd.OutOrStdout()
			_, err := demo.Run(cmd.Context(), c)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.MinIO, "minio", "127.0.0.1:9000", "MinIO's S3 API, host:port")
	f.StringVar(&c.MinIOUser, "minio-user", os.Getenv("VP_MINIO_USER"), "MinIO user (env VP_MINIO_USER; default: vp up's credentials)")
	f.StringVar(&c.MinIOPassword, "minio-password", os.Getenv("VP_MINIO_PASSWORD"), "MinIO password (env VP_MINIO_PASSWORD; default: vp up's credentials)")
	f.StringVar(&c.Bucket, "bucket", up.DatasetsBucket, "the bucket whose uploads train")
	f.StringVar(&c.Gateway, "gateway", envOr("VP_GATEWAY", "http://127.0.0.1:8088"), "the gateway's URL (env VP_GATEWAY)")
	f.StringVar(&c.Token, "token", os.Getenv("VP_TOKEN"), "the gateway's bearer token (env VP_TOKEN; default: vp up's credentials)")
	f.StringVar(&data, "data", up.DefaultDataDir(), "vp up's data folder, where its credentials.json is")
	f.StringVar(&c.Name, "dataset", "", "the dataset's name (default demo-TIME)")
	f.IntVar(&c.Dataset.PerClass, "images", 8, "training images per class (half as many for validation)")
	f.IntVar(&c.Dataset.Side, "size", 32, "the images' side in pixels")
	f.StringVar(&c.Training.Model, "model", "torchvision/resnet18", "the model to train (framework/name)")
	f.IntVar(&c.Training.Epochs, "epochs", 2, "epochs")
	f.IntVar(&c.Training.GPUs, "gpus", 0, "GPUs the run asks for")
	f.StringVar(&c.Training.Executor, "executor", "", "the executor the job asks for (process, docker, kubernetes; default: the gpu-runner's)")
	f.DurationVar(&c.Timeout, "timeout", 0, "give up after this long (default 15m)")
	return cmd
}

// demoCredentials fills what the flags and the environment left empty
// from vp up's credentials.json in data.
func demoCredentials(c *demo.Config, data string) error {
	if c.MinIOUser != "" && c.MinIOPassword != "" && c.Token != "" {
		return nil
	}
	p := filepath.Join(data, "credentials.json")
	creds, err := credentials.Read(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no credentials: pass --minio-user, --minio-password and --token, or run vp up (or make compose-up) once, which keeps them in %s", p)
		}
		return err
	}
	fill(&c.MinIOUser, creds.MinIOUser)
	fill(&c.MinIOPassword, creds.MinIOPassword)
	fill(&c.Token, creds.GatewayToken)
	return nil
}
