package up

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	datasetintake "github.com/vision-platform/vp/functions/dataset-intake"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/functions/funcyaml"
	"github.com/vision-platform/vp/functions/gateway"
	gpurunner "github.com/vision-platform/vp/functions/gpu-runner"
	imagebuilder "github.com/vision-platform/vp/functions/image-builder"
	jobtrigger "github.com/vision-platform/vp/functions/job-trigger"
	mlflowsync "github.com/vision-platform/vp/functions/mlflow-sync"
	runrecorder "github.com/vision-platform/vp/functions/run-recorder"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/local/broker"
)

// functions makes the platform's functions, dataset-intake first (MinIO's
// webhook points at it), each with the settings it would get on Knative
// from its func.yaml's envs: the store, the broker's ingress as K_SINK.
func (c Config) functions(creds Credentials, log zerolog.Logger) ([]platformFunction, error) {
	logger := func(name string) zerolog.Logger { return log.With().Str("function", name).Logger() }
	specs, err := filepath.Abs(c.Specs)
	if err != nil {
		return nil, err
	}
	sdk, err := filepath.Abs(c.SDK)
	if err != nil {
		return nil, err
	}
	cache := c.ImageCache
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, err
		}
		cache = filepath.Join(home, ".cache", "vision-platform", "images")
	}
	common := map[string]string{
		"VP_S3_ENDPOINT":   c.MinIOAddr,
		"VP_S3_ACCESS_KEY": creds.MinIOUser,
		"VP_S3_SECRET_KEY": creds.MinIOPassword,
		"K_SINK":           "http://" + c.BrokerAddr + "/default/default",
		"VP_LEDGER_BUCKET": ledger.DefaultBucket,
		"VP_RUNS_BUCKET":   RunsBucket,
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	type made struct {
		yaml []byte
		f    fn.Function
		cfg  map[string]string
		reg  *prometheus.Registry
	}
	var list []made
	add := func(y []byte, f fn.Function, reg *prometheus.Registry, cfg map[string]string) {
		list = append(list, made{y, f, cfg, reg})
	}
	{
		reg := prometheus.NewRegistry()
		add(datasetintake.FuncYAML, datasetintake.New(datasetintake.WithMetrics(reg), datasetintake.WithLogger(logger("dataset-intake"))), reg,
			with(map[string]string{"VP_INTAKE_TOKEN": creds.IntakeToken}))
	}
	{
		reg := prometheus.NewRegistry()
		add(jobtrigger.FuncYAML, jobtrigger.New(jobtrigger.WithMetrics(reg), jobtrigger.WithLogger(logger("job-trigger"))), reg, with(nil))
	}
	{
		reg := prometheus.NewRegistry()
		add(imagebuilder.FuncYAML, imagebuilder.New(imagebuilder.WithMetrics(reg), imagebuilder.WithLogger(logger("image-builder"))), reg, with(map[string]string{
			"VP_REGISTRY": c.RegistryAddr + "/vp", "VP_IMAGE_SPECS": specs, "VP_IMAGE_CACHE": cache,
		}))
	}
	{
		reg := prometheus.NewRegistry()
		add(gpurunner.FuncYAML, gpurunner.New(gpurunner.WithMetrics(reg), gpurunner.WithLogger(logger("gpu-runner"))), reg, with(map[string]string{
			"VP_EXECUTOR": c.Executor, "VP_AGENT": c.Agent, "VP_WORK_DIR": filepath.Join(c.DataDir, "runs"),
			"VP_PYTHON": c.Python, "PYTHONPATH": sdk,
		}))
	}
	{
		reg := prometheus.NewRegistry()
		add(runrecorder.FuncYAML, runrecorder.New(runrecorder.WithMetrics(reg), runrecorder.WithLogger(logger("run-recorder"))), reg, with(nil))
	}
	if c.MLflow != "" {
		reg := prometheus.NewRegistry()
		cfg := with(map[string]string{mlflowsync.EnvTrackingURI: c.MLflow})
		for _, k := range []string{mlflowsync.EnvToken, mlflowsync.EnvUsername, mlflowsync.EnvPassword, mlflowsync.EnvRegisterModels, mlflowsync.EnvModelName, mlflowsync.EnvTimeout} {
			if v := c.MLflowSettings[k]; v != "" {
				cfg[k] = v
			}
		}
		add(mlflowsync.FuncYAML, mlflowsync.New(mlflowsync.WithMetrics(reg), mlflowsync.WithLogger(logger("mlflow-sync"))), reg, cfg)
	}
	{
		// The gateway last, on an address of its own (--gateway-addr): the
		// front door people and other systems are told about.
		reg := prometheus.NewRegistry()
		cfg := with(map[string]string{
			"VP_GATEWAY_TOKENS": GatewayTokenName + ":" + gateway.ScopeWrite + ":" + creds.GatewayToken, "VP_GATEWAY_DATASETS_BUCKET": DatasetsBucket,
		})
		if c.GatewayTokensFile != "" {
			cfg["VP_GATEWAY_TOKENS_FILE"] = c.GatewayTokensFile
		}
		add(gateway.FuncYAML, gateway.New(gateway.WithMetrics(reg), gateway.WithLogger(logger("gateway"))), reg, cfg)
	}
	out := make([]platformFunction, len(list))
	for i, m := range list {
		spec, err := funcyaml.Parse("func.yaml", m.yaml)
		if err != nil {
			return nil, fmt.Errorf("a function's func.yaml: %w", err)
		}
		out[i] = platformFunction{name: spec.Name, spec: spec, f: m.f, cfg: m.cfg, metrics: m.reg, log: logger(spec.Name)}
		if spec.Name == "gateway" {
			out[i].addr = c.GatewayAddr
		}
		if spec.Name == "mlflow-sync" {
			out[i].delivery = mlflowDelivery()
		}
	}
	return out, nil
}

// mlflowDelivery redelivers to mlflow-sync for about an hour (60 tries,
// linear from 2 s, at most 2 minutes apart) rather than Knative's default
// of about 3.5 minutes: while MLflow is down the runs' events wait in the
// broker, and drain once it is back.
func mlflowDelivery() *broker.DeliverySpec {
	retry := int32(60)
	return &broker.DeliverySpec{Retry: &retry, BackoffPolicy: "linear", BackoffDelay: "PT2S"}
}
