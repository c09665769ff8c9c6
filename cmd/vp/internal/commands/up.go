package commands

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/local/up"
)

func newUpCmd(rf *rootFlags) *cobra.Command {
	var c up.Config
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the platform locally: broker, registry, MinIO and every function",
		Long: `Runs the whole platform on this machine: the broker (Knative semantics on
embedded NATS JetStream), the OCI registry, a MinIO server with its buckets and
its webhook to dataset-intake, every function on its own port with triggers
made from its func.yaml, and an event display. A dataset put in MinIO's
datasets bucket trains a model. State stays in --data: Ctrl-C stops
everything, and a second vp up resumes where the first stopped.

With --mlflow URL, the mlflow-sync function joins them and keeps an MLflow run
for each platform run on that tracking server. Its credentials come from the
environment: VP_MLFLOW_TOKEN (or MLFLOW_TRACKING_TOKEN), or VP_MLFLOW_USERNAME
and VP_MLFLOW_PASSWORD (or MLFLOW_TRACKING_USERNAME and _PASSWORD);
VP_MLFLOW_REGISTER_MODELS=true registers succeeded runs' models.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := stderrLogger(rf)
			if err != nil {
				return err
			}
			cmd.SilenceUsage = true
			c.Out = cmd.ErrOrStderr()
			if c.MLflow != "" {
				c.MLflowSettings = mlflowSettings(os.Getenv)
			}
			return up.Run(cmd.Context(), c, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.DataDir, "data", up.DefaultDataDir(), "where the platform keeps its state")
	f.StringVar(&c.BrokerAddr, "broker-addr", "127.0.0.1:8080", "broker listen address")
	f.StringVar(&c.DisplayAddr, "display-addr", "127.0.0.1:8089", "event display listen address")
	f.StringVar(&c.GatewayAddr, "gateway-addr", "127.0.0.1:8088", "gateway listen address (the API and the console)")
	f.StringVar(&c.GatewayTokensFile, "gateway-tokens", "", "a YAML file of more gateway tokens (name, scope read or write, token or sha256)")
	f.StringVar(&c.RegistryAddr, "registry-addr", "127.0.0.1:5000", "embedded OCI registry listen address")
	f.StringVar(&c.MinIOAddr, "minio-addr", "127.0.0.1:9000", "MinIO S3 API listen address")
	f.StringVar(&c.MinIOConsoleAddr, "minio-console-addr", "127.0.0.1:9001", "MinIO console listen address")
	f.StringVar(&c.MinIOBinary, "minio", "", "the MinIO server (default: on PATH or where make deps puts it)")
	f.StringVar(&c.FunctionsHost, "functions-host", "127.0.0.1", "address the functions listen on")
	f.IntVar(&c.FunctionsPort, "functions-port", 8090, "first port of the functions (one port each, in order: dataset-intake, job-trigger, image-builder, gpu-runner, run-recorder, then mlflow-sync with --mlflow)")
	f.StringVar(&c.MLflow, "mlflow", "", "an MLflow tracking server's URL: each platform run is synced to it (mlflow-sync); credentials from VP_MLFLOW_TOKEN or VP_MLFLOW_USERNAME/VP_MLFLOW_PASSWORD")
	f.StringVar(&c.Specs, "specs", "images/frameworks", "folder of framework image specs")
	f.StringVar(&c.ImageCache, "image-cache", "", "the image builder's layer cache (default ~/.cache/vision-platform/images)")
	f.StringVar(&c.Executor, "executor", "process", "what runs trainings: process, docker or auto")
	f.StringVar(&c.Agent, "agent", "self", "the run agent for the process executor: a path, or self (vp agent)")
	f.StringVar(&c.Python, "python", "/usr/bin/python3", "the Python the process executor trains with")
	f.StringVar(&c.SDK, "sdk", "images/python", "folder holding the training SDK (vp_sdk)")
	f.StringVar(&c.TriggersFile, "triggers", "", "extra Knative Trigger objects to add (notifications to other systems)")
	return cmd
}

// mlflowSettings are mlflow-sync's settings from the environment: the
// platform's VP_MLFLOW_* names first, then MLflow's own client variables.
func mlflowSettings(getenv func(string) string) map[string]string {
	m := map[string]string{}
	for k, fallback := range map[string]string{
		"VP_MLFLOW_TOKEN":           "MLFLOW_TRACKING_TOKEN",
		"VP_MLFLOW_USERNAME":        "MLFLOW_TRACKING_USERNAME",
		"VP_MLFLOW_PASSWORD":        "MLFLOW_TRACKING_PASSWORD",
		"VP_MLFLOW_REGISTER_MODELS": "",
		"VP_MLFLOW_MODEL_NAME":      "",
		"VP_MLFLOW_TIMEOUT":         "",
	} {
		v := getenv(k)
		if v == "" && fallback != "" {
			v = getenv(fallback)
		}
		if v != "" {
			m[k] = v
		}
	}
	return m
}
