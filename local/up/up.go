package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/functions/funcyaml"
	"github.com/vision-platform/vp/functions/mlflow-sync/mlflow"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/local/broker"
	"github.com/vision-platform/vp/local/minio"
	"github.com/vision-platform/vp/local/ociregistry"
	"github.com/vision-platform/vp/registry"
)

// Buckets vp up makes in its MinIO.
const (
	DatasetsBucket = "datasets" // uploads here train models (MinIO's webhook tells dataset-intake)
	RunsBucket     = "runs"     // each run's outputs: weights, metrics, checkpoints, log
)

// Config is what `vp up` runs.
type Config struct {
	// DataDir holds everything the platform stores locally; default
	// $XDG_DATA_HOME/vision-platform (~/.local/share/vision-platform).
	DataDir string
	// BrokerAddr is where the broker listens (default 127.0.0.1:8080).
	BrokerAddr string
	// DisplayAddr is where the event display listens (default 127.0.0.1:8089).
	DisplayAddr string
	// GatewayAddr is where the gateway (the API and the console) listens
	// (default 127.0.0.1:8088; with a negative FunctionsPort, any free
	// port of FunctionsHost).
	GatewayAddr string
	// GatewayTokensFile adds the bearer tokens of a file (the gateway's
	// YAML tokens file) to the one vp up makes.
	GatewayTokensFile string
	// RegistryAddr is where the embedded OCI registry listens (default
	// 127.0.0.1:5000).
	RegistryAddr string
	// MinIOAddr and MinIOConsoleAddr are where the MinIO server listens
	// (default 127.0.0.1:9000 and :9001).
	MinIOAddr, MinIOConsoleAddr string
	// MinIOBinary is the MinIO server (default: on PATH or in the tool
	// cache, where make deps puts it).
	MinIOBinary string
	// FunctionsHost and FunctionsPort place the functions: each on its own
	// port from FunctionsPort up (default 127.0.0.1, 8090; a negative port:
	// any free ports).
	FunctionsHost string
	FunctionsPort int
	// Specs is the folder of framework image specs (default
	// images/frameworks, from the repository's root).
	Specs string
	// ImageCache is the image builder's layer cache (default
	// ~/.cache/vision-platform/images).
	ImageCache string
	// Executor runs the trainings: process (the default), docker or auto.
	Executor string
	// Agent is the run agent's command for the process executor: a path,
	// or "self" for this program's `vp agent` (the default).
	Agent string
	// Python is the interpreter the process executor's agent trains with
	// (default /usr/bin/python3, with Debian's python3-torch), and SDK the
	// folder holding the training SDK (default images/python).
	Python, SDK string
	// TriggersFile adds triggers to the platform's own.
	TriggersFile string
	// MLflow is the tracking URI of an MLflow server (http or https): set,
	// the mlflow-sync function joins the others and keeps an MLflow run
	// for each platform run; empty, nothing changes.
	MLflow string
	// MLflowSettings are mlflow-sync's other settings: VP_MLFLOW_TOKEN, or
	// VP_MLFLOW_USERNAME and VP_MLFLOW_PASSWORD, VP_MLFLOW_REGISTER_MODELS,
	// VP_MLFLOW_MODEL_NAME, VP_MLFLOW_TIMEOUT (the command takes them from
	// its environment: secrets stay off its command line).
	MLflowSettings map[string]string
	// Out receives the summary of addresses and credentials (default
	// standard error).
	Out io.Writer
}

// DefaultDataDir is where `vp up` keeps its state unless told otherwise.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "vision-platform")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".vision-platform"
	}
	return filepath.Join(home, ".local", "share", "vision-platform")
}

func (c *Config) defaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.DataDir, DefaultDataDir())
	def(&c.BrokerAddr, "127.0.0.1:8080")
	def(&c.DisplayAddr, "127.0.0.1:8089")
	def(&c.RegistryAddr, "127.0.0.1:5000")
	def(&c.MinIOAddr, "127.0.0.1:9000")
	def(&c.MinIOConsoleAddr, "127.0.0.1:9001")
	def(&c.FunctionsHost, "127.0.0.1")
	if c.FunctionsPort < 0 {
		def(&c.GatewayAddr, c.FunctionsHost+":0")
	}
	def(&c.GatewayAddr, "127.0.0.1:8088")
	def(&c.Specs, filepath.Join("images", "frameworks"))
	def(&c.SDK, filepath.Join("images", "python"))
	def(&c.Executor, "process")
	def(&c.Agent, "self")
	def(&c.Python, "/usr/bin/python3")
	if c.FunctionsPort == 0 {
		c.FunctionsPort = 8090
	}
	if c.Out == nil {
		c.Out = os.Stderr
	}
}

// Problem is a setup problem vp up reports as what to do, not as a trace.
type Problem struct {
	What, Fix string
	Err       error
}

func (p *Problem) Error() string {
	s := p.What
	if p.Err != nil {
		s += ": " + p.Err.Error()
	}
	if p.Fix != "" {
		s += "\n  → " + p.Fix
	}
	return s
}

func (p *Problem) Unwrap() error { return p.Err }

// listen opens addr, or says what to do when it is taken.
func listen(addr, what, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &Problem{What: fmt.Sprintf("%s cannot listen on %s", what, addr), Err: err,
			Fix: fmt.Sprintf("stop what uses it (another vp up?) or choose another address with %s", flag)}
	}
	return ln, nil
}

// Run starts the local platform and blocks until ctx ends: the broker, the
// embedded OCI registry, a MinIO server with its buckets and its webhook
// to dataset-intake, every function on its own port subscribed through
// triggers made from its func.yaml, and an event display subscribed to
// every event. Stopping (ctx ends) stops them all; state under DataDir
// survives, so a second Run resumes where the first stopped.
func Run(ctx context.Context, c Config, log zerolog.Logger) error {
	c.defaults()
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return &Problem{What: "cannot make the data folder " + c.DataDir, Err: err, Fix: "choose another with --data"}
	}
	creds, err := loadCredentials(c.DataDir)
	if err != nil {
		return err
	}
	if err := preflight(ctx, c); err != nil {
		return err
	}
	var closers []io.Closer
	defer func() {
		for _, cl := range closers {
			cl.Close()
		}
	}()
	regLn, err := listen(c.RegistryAddr, "the OCI registry", "--registry-addr")
	if err != nil {
		return err
	}
	closers = append(closers, regLn)
	displayLn, err := listen(c.DisplayAddr, "the event display", "--display-addr")
	if err != nil {
		return err
	}
	closers = append(closers, displayLn)
	// The broker listens itself; check its address is free now.
	if ln, err := listen(c.BrokerAddr, "the broker", "--broker-addr"); err != nil {
		return err
	} else {
		ln.Close()
	}
	fns, err := c.functions(creds, log)
	if err != nil {
		return err
	}
	for i := range fns {
		addr := fmt.Sprintf("%s:%d", c.FunctionsHost, c.FunctionsPort+i)
		if c.FunctionsPort < 0 {
			addr = c.FunctionsHost + ":0" // any free port (tests)
		}
		flag := "--functions-port"
		if fns[i].addr != "" {
			addr, flag = fns[i].addr, "--"+fns[i].name+"-addr"
		}
		ln, err := listen(addr, "function "+fns[i].name, flag)
		if err != nil {
			return err
		}
		closers = append(closers, ln)
		fns[i].ln = ln
	}
	trs, err := triggers(fns, displayLn.Addr().String())
	if err != nil {
		return err
	}
	reg, err := ociregistry.New(ctx, filepath.Join(c.DataDir, "registry"))
	if err != nil {
		return err
	}
	bc := BrokerConfig{
		DataDir:            filepath.Join(c.DataDir, "broker"),
		TriggersFile:       c.TriggersFile,
		Triggers:           trs,
		Addr:               c.BrokerAddr,
		ValidateVocabulary: true,
		Check:              catalogCheck(registry.Default()),
	}
	log.Info().Str("data", c.DataDir).Msg("starting the local platform")
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return RunBroker(gctx, bc, log.With().Str("component", "broker").Logger()) })
	g.Go(func() error {
		rlog := log.With().Str("component", "registry").Logger()
		rlog.Info().Str("addr", regLn.Addr().String()).Msg("OCI registry listening")
		return reg.Serve(gctx, regLn)
	})
	g.Go(func() error {
		dlog := log.With().Str("component", "event-display").Logger()
		dlog.Info().Str("addr", "http://"+displayLn.Addr().String()).Msg("event display listening")
		return serve(gctx, displayLn, EventDisplay(dlog), dlog)
	})
	for _, f := range fns {
		g.Go(func() error {
			f.log.Info().Str("addr", "http://"+f.ln.Addr().String()).Msg("function listening")
			err := fn.Serve(gctx, f.ln, f.f, f.cfg, map[string]http.Handler{"/metrics": promhttp.HandlerFor(f.metrics, promhttp.HandlerOpts{})})
			if err != nil {
				return fmt.Errorf("function %s: %w", f.name, err)
			}
			return nil
		})
	}
	// MinIO once dataset-intake answers: MinIO checks at its start that a
	// webhook target without a queue answers, and leaves out one that does
	// not. Every new object in the datasets bucket is told to
	// dataset-intake twice: by a webhook target with a queue folder
	// (nothing is lost while dataset-intake is down, but MinIO sends from
	// that queue on a 3 s tick) and by one without (sent at once; lost if
	// dataset-intake does not answer). dataset-intake is idempotent: the
	// second changes nothing, and the first to arrive sets the latency.
	// The functions reach MinIO lazily, as on a cluster.
	intake := "http://" + fns[0].ln.Addr().String() + "/"
	g.Go(func() error {
		if err := waitReady(gctx, intake+"health/readiness"); err != nil {
			return nil // stopping
		}
		ms, err := minio.Start(context.WithoutCancel(gctx), minio.Config{
			Binary: c.MinIOBinary, DataDir: filepath.Join(c.DataDir, "minio"),
			Addr: c.MinIOAddr, ConsoleAddr: c.MinIOConsoleAddr,
			User: creds.MinIOUser, Password: creds.MinIOPassword,
			Webhooks: []minio.Webhook{
				{ID: "vp", Endpoint: intake, Token: creds.IntakeToken, QueueDir: filepath.Join(c.DataDir, "minio-webhook-queue")},
				{ID: "vpfast", Endpoint: intake, Token: creds.IntakeToken},
			},
			Buckets: []minio.Bucket{{Name: DatasetsBucket, Notify: []string{"vp", "vpfast"}}, {Name: RunsBucket}, {Name: ledger.DefaultBucket}},
		})
		if err != nil {
			return &Problem{What: "MinIO did not start", Err: err, Fix: "run make deps (it installs the MinIO server), or free " + c.MinIOAddr + " and " + c.MinIOConsoleAddr + " (--minio-addr, --minio-console-addr)"}
		}
		defer ms.Stop()
		log.Info().Str("addr", c.MinIOAddr).Msg("MinIO ready")
		if len(ms.Dropped) > 0 {
			log.Warn().Strs("targets", ms.Dropped).Msg("MinIO left out its unqueued webhook target (dataset-intake did not answer it at its start): uploads reach dataset-intake through the queued target only, up to 3 s later")
		}
		if err := waitReady(gctx, "http://"+c.BrokerAddr+"/readyz"); err != nil {
			return nil // stopping
		}
		for _, f := range fns {
			if err := waitReady(gctx, "http://"+f.ln.Addr().String()+"/health/readiness"); err != nil {
				return nil
			}
		}
		c.summary(creds, fns, displayLn.Addr().String())
		select {
		case <-gctx.Done():
			return nil
		case <-ms.Done():
			return fmt.Errorf("MinIO exited: %s", ms.Output())
		}
	})
	err = g.Wait()
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// catalogCheck refuses, at the broker's ingress, a job.requested the
// catalog refuses (an unknown model, an image size the model can't take):
// a job is refused where it enters, not at run time.
func catalogCheck(c *registry.Catalog) func(event.Event) []events.FieldError {
	return func(e event.Event) []events.FieldError {
		if events.Type(e.Type()) != events.JobRequested {
			return nil
		}
		var j events.JobRequestedData
		if err := events.DecodeInto(e, &j); err != nil {
			return nil // the vocabulary's check names it
		}
		probs := c.CheckJob(j)
		for i := range probs {
			probs[i].Field = "data." + probs[i].Field
		}
		return probs
	}
}

// waitReady polls url until it answers 200, or ctx ends.
func waitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// preflight checks what the platform needs before anything starts.
func preflight(ctx context.Context, c Config) error {
	if c.MLflow != "" {
		if _, err := mlflow.New(c.MLflow); err != nil {
			return &Problem{What: "the MLflow tracking URI is not usable", Err: err, Fix: "pass --mlflow the tracking server's URL, such as http://127.0.0.1:5000 (credentials go in VP_MLFLOW_TOKEN, or VP_MLFLOW_USERNAME and VP_MLFLOW_PASSWORD)"}
		}
	}
	if _, err := os.Stat(c.Specs); err != nil {
		return &Problem{What: "no image specs at " + c.Specs, Err: err, Fix: "run vp up from the repository's root (make up does), or pass --specs"}
	}
	if c.MinIOBinary == "" {
		if _, err := minio.Find(); err != nil {
			return &Problem{What: "the MinIO server is missing", Fix: "run make deps: it builds the MinIO server into ~/.cache/vision-platform/bin"}
		}
	}
	if c.Executor == "process" {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(cctx, c.Python, "-c", "import torch, torchvision, PIL").CombinedOutput(); err != nil {
			return &Problem{What: fmt.Sprintf("the process executor trains with %s, which cannot import torch, torchvision and PIL", c.Python),
				Err: fmt.Errorf("%v: %s", err, lastLine(string(out))),
				Fix: "run make deps (it installs Debian's python3-torch, python3-torchvision and python3-pil), or pass --python, or --executor docker"}
		}
		if _, err := os.Stat(filepath.Join(c.SDK, "vp_sdk")); err != nil {
			return &Problem{What: "no training SDK at " + c.SDK, Err: err, Fix: "run vp up from the repository's root, or pass --sdk"}
		}
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// platformFunction is one function vp up runs.
type platformFunction struct {
	name    string
	spec    *funcyaml.Function
	f       fn.Function
	cfg     map[string]string
	metrics *prometheus.Registry
	log     zerolog.Logger
	ln      net.Listener
	// addr, when set, is where the function listens instead of the next
	// functions port.
	addr string
	// delivery is the delivery spec of the function's triggers; nil for
	// Knative's default.
	delivery *broker.DeliverySpec
}

// triggers makes the broker's triggers: one per subscription of each
// function's func.yaml, and the event display's.
func triggers(fns []platformFunction, display string) ([]broker.Trigger, error) {
	specs := make([]*funcyaml.Function, len(fns))
	addrs := map[string]string{}
	for i, f := range fns {
		specs[i] = f.spec
		addrs[f.spec.Name] = "http://" + f.ln.Addr().String() + "/"
	}
	var b strings.Builder
	b.WriteString(SubscriptionTriggers(specs, func(name string) string { return addrs[name] }))
	fmt.Fprintf(&b, "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: event-display\nspec:\n  broker: default\n  subscriber:\n    uri: http://%s/\n  delivery:\n    retry: 3\n    backoffDelay: PT0.2S\n", display)
	trs, err := broker.ParseTriggers("vp up (from the functions' func.yaml)", []byte(b.String()))
	if err != nil {
		return nil, err
	}
	for _, f := range fns {
		if f.delivery == nil {
			continue
		}
		for i := range trs {
			if trs[i].Spec.Subscriber.URI == addrs[f.spec.Name] {
				d := *f.delivery
				trs[i].Spec.Delivery = &d
			}
		}
	}
	return trs, nil
}

// SubscriptionTriggers is the Trigger objects (YAML, as the local broker
// and kubectl take them) vp up makes from the functions' func.yaml: one per
// subscription, filtering on its attributes, delivering to subscriber(name)
// of its function. infra's tests check that the Knative Triggers select
// the same events.
func SubscriptionTriggers(specs []*funcyaml.Function, subscriber func(name string) string) string {
	var b strings.Builder
	for _, f := range specs {
		for i, s := range f.Deploy.Subscriptions {
			fmt.Fprintf(&b, "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: %s\nspec:\n  broker: %s\n", f.TriggerName(i), s.Source)
			if len(s.Filters) > 0 {
				b.WriteString("  filter:\n    attributes:\n")
				for _, k := range slices.Sorted(maps.Keys(s.Filters)) {
					fmt.Fprintf(&b, "      %s: %q\n", k, s.Filters[k])
				}
			}
			fmt.Fprintf(&b, "  subscriber:\n    uri: %s\n", subscriber(f.Name))
		}
	}
	return b.String()
}

// summary prints where everything is and the credentials.
func (c Config) summary(creds Credentials, fns []platformFunction, display string) {
	w := tabwriter.NewWriter(c.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\nVision Platform is up (data in %s). Ctrl-C stops it.\n\n", c.DataDir)
	fmt.Fprintf(w, "broker ingress\thttp://%s/default/default\n", c.BrokerAddr)
	fmt.Fprintf(w, "MinIO (S3 API)\thttp://%s\tuser %s\tpassword %s\n", c.MinIOAddr, creds.MinIOUser, creds.MinIOPassword)
	fmt.Fprintf(w, "  buckets\t%s (uploads train), %s, %s\n", DatasetsBucket, RunsBucket, ledger.DefaultBucket)
	fmt.Fprintf(w, "OCI registry\t%s\n", c.RegistryAddr)
	fmt.Fprintf(w, "event display\thttp://%s\n", display)
	for _, f := range fns {
		if f.name == "gateway" {
			fmt.Fprintf(w, "gateway (API, console)\thttp://%s\ttoken %s\t(VP_GATEWAY=http://%s VP_TOKEN=%s)\n", f.ln.Addr(), creds.GatewayToken, f.ln.Addr(), creds.GatewayToken)
		}
	}
	if c.MLflow != "" {
		fmt.Fprintf(w, "MLflow tracking\t%s\t(runs synced by mlflow-sync)\n", c.MLflow)
	}
	for _, f := range fns {
		fmt.Fprintf(w, "%s\thttp://%s\t/metrics\n", f.name, f.ln.Addr())
	}
	fmt.Fprintf(w, "\nTry: mc cp -r ./cats vp/%s/cats/ (a folder with a dataset.yaml), or vp emit --type %s ...\n", DatasetsBucket, "dev.visionplatform.job.requested")
	w.Flush()
}
