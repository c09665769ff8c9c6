package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/vision-platform/vp/infra"
)

// optionFlags names the flag that sets each field an *infra.OptionError
// names.
var optionFlags = map[string]string{
	infra.FieldNamespace:   "--namespace",
	infra.FieldImages:      "--images",
	infra.FieldRegistry:    "--registry",
	infra.FieldPlaceholder: "--placeholder-digest",
	infra.FieldDelivery:    "--retry, --backoff-policy, --backoff-delay or --delivery-timeout",
	infra.FieldPlacement:   "--gpu-node-selector or --gpu-toleration",
	infra.FieldMC:          "--mc-image",
	infra.FieldMinIO:       "--minio-endpoint or --minio-queue-dir",
}

// ErrDiffers is --check's error when the tree is not what it renders.
var ErrDiffers = errors.New("the manifests differ from what vp deploy render makes (run it and commit the result)")

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// run parses args, renders and writes (or, with --check, compares) the
// tree; what it did goes to stdout.
func run(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vp-render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "..", "the repository (functions/*/func.yaml are read there)")
	out := fs.String("out", ".", "the infra folder to write (base/, overlays/, templates/)")
	check := fs.Bool("check", false, "write nothing; fail when the files differ from what would be written")
	images := fs.String("images", "", "a JSON file of function name to image reference by digest (vp images build-functions --images-file)")
	registry := fs.String("registry", infra.DefaultRegistry, "repository of the images --images does not name, and VP_REGISTRY")
	placeholder := fs.String("placeholder-digest", infra.DefaultPlaceholder, "digest of the images --images does not name")
	namespace := fs.String("namespace", infra.DefaultNamespace, "namespace of every object")
	retry := fs.Int("retry", int(infra.DefaultDelivery.Retry), "broker delivery: retries after the first attempt")
	policy := fs.String("backoff-policy", infra.DefaultDelivery.BackoffPolicy, "broker delivery: linear or exponential")
	delay := fs.String("backoff-delay", infra.DefaultDelivery.BackoffDelay, "broker delivery: ISO 8601 backoff delay")
	timeout := fs.String("delivery-timeout", infra.DefaultDelivery.Timeout, "broker delivery: ISO 8601 timeout of each attempt (empty: none)")
	var selectors, tolerations list
	fs.Var(&selectors, "gpu-node-selector", "gpu overlay: node label KEY=VALUE the runs' pods need (repeatable; default nvidia.com/gpu.present=true)")
	fs.Var(&tolerations, "gpu-toleration", "gpu overlay: taint KEY[=VALUE][:EFFECT] the runs' pods tolerate (repeatable; default nvidia.com/gpu:NoSchedule)")
	minioEndpoint := fs.String("minio-endpoint", "", "MinIO's S3 API, host:port (default minio.NAMESPACE.svc.cluster.local:9000)")
	minioSecure := fs.Bool("minio-secure", false, "MinIO speaks TLS")
	queueDir := fs.String("minio-queue-dir", "", "where MinIO keeps undelivered webhook notifications (default /var/lib/minio-webhook-queue)")
	mcImage := fs.String("mc-image", infra.DefaultMCImage, "image of the Job that configures MinIO (runs mc)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	opts := []infra.Option{
		infra.WithNamespace(*namespace), infra.WithRegistry(*registry), infra.WithPlaceholderDigest(*placeholder),
		infra.WithDelivery(infra.Delivery{Retry: int32(*retry), BackoffPolicy: *policy, BackoffDelay: *delay, Timeout: *timeout}),
		infra.WithMinIO(infra.MinIO{Endpoint: *minioEndpoint, Secure: *minioSecure, QueueDir: *queueDir, MCImage: *mcImage}),
	}
	if *images != "" {
		refs, err := readImages(*images)
		if err != nil {
			return err
		}
		opts = append(opts, infra.WithImages(refs))
	}
	if len(selectors) > 0 || len(tolerations) > 0 {
		p, err := placement(selectors, tolerations)
		if err != nil {
			return err
		}
		opts = append(opts, infra.WithPlacement(p))
	}
	fns, err := infra.LoadFunctions(*root)
	if err != nil {
		return err
	}
	o, err := infra.Render(fns, opts...)
	var oe *infra.OptionError
	if errors.As(err, &oe) && optionFlags[oe.Field] != "" {
		return fmt.Errorf("%s: %w", optionFlags[oe.Field], err)
	}
	if err != nil {
		return err
	}
	if *check {
		diffs, err := o.Diff(*out)
		if err != nil {
			return err
		}
		for _, d := range diffs {
			fmt.Fprintln(stdout, d)
		}
		if len(diffs) > 0 {
			return ErrDiffers
		}
		fmt.Fprintf(stdout, "%d files up to date\n", len(o.Files))
		return nil
	}
	if err := o.Write(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rendered %d functions into %d files under %s\n", len(fns), len(o.Files), *out)
	return nil
}

// readImages reads a JSON object of function name to image reference.
func readImages(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--images: %w", err)
	}
	var refs map[string]string
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&refs); err != nil {
		return nil, fmt.Errorf("--images %s: a JSON object of function name to image reference: %w", file, err)
	}
	return refs, nil
}

// placement reads --gpu-node-selector KEY=VALUE and --gpu-toleration
// KEY[=VALUE][:EFFECT].
func placement(selectors, tolerations []string) (infra.Placement, error) {
	p := infra.Placement{}
	for _, s := range selectors {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return p, fmt.Errorf("--gpu-node-selector %q: want KEY=VALUE", s)
		}
		if p.NodeSelector == nil {
			p.NodeSelector = map[string]string{}
		}
		p.NodeSelector[k] = v
	}
	for _, s := range tolerations {
		kv, effect, _ := strings.Cut(s, ":")
		k, v, hasValue := strings.Cut(kv, "=")
		if k == "" {
			return p, fmt.Errorf("--gpu-toleration %q: want KEY[=VALUE][:EFFECT]", s)
		}
		t := corev1.Toleration{Key: k, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffect(effect)}
		if hasValue {
			t.Operator, t.Value = corev1.TolerationOpEqual, v
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return p, fmt.Errorf("--gpu-toleration %q: effect %q is not NoSchedule, PreferNoSchedule or NoExecute", s, effect)
		}
		p.Tolerations = append(p.Tolerations, t)
	}
	return p, nil
}
