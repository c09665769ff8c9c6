package infra

import (
	"fmt"
	"maps"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// Fields an *OptionError names: the setting a caller (a command's flag)
// gave a bad value.
const (
	FieldNamespace   = "namespace"
	FieldImages      = "images"
	FieldRegistry    = "registry"
	FieldPlaceholder = "placeholder digest"
	FieldDelivery    = "delivery"
	FieldPlacement   = "GPU placement"
	FieldMC          = "mc image"
	FieldMinIO       = "MinIO"
)

// OptionError is a bad option value; Field is one of the Field constants.
type OptionError struct {
	Field, Value string
	Err          error
}

func (e *OptionError) Error() string { return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err) }

func (e *OptionError) Unwrap() error { return e.Err }

// Delivery is the Broker's delivery spec: what every Trigger of the
// broker gets (Knative's shape; durations in ISO 8601).
type Delivery struct {
	Retry         int32
	BackoffPolicy string // linear or exponential
	BackoffDelay  string // PT0.2S
	Timeout       string // per attempt; "" for none
}

// DefaultDelivery is the local broker's default (broker.DefaultDelivery):
// 10 retries, exponential from 0.2 s, 60 s per attempt.
var DefaultDelivery = Delivery{Retry: 10, BackoffPolicy: "exponential", BackoffDelay: "PT0.2S", Timeout: "PT60S"}

// Placement is where the runs' pods go: the GPU nodes.
type Placement struct {
	NodeSelector map[string]string
	Tolerations  []corev1.Toleration
}

// DefaultPlacement selects the nodes NVIDIA's GPU feature discovery labels
// and tolerates the taint GPU node pools carry.
func DefaultPlacement() Placement {
	return Placement{
		NodeSelector: map[string]string{"nvidia.com/gpu.present": "true"},
		Tolerations:  []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
	}
}

// SecretKey is one key of a Secret; an optional one may be missing (the
// setting is then unset).
type SecretKey struct {
	Name, Key string
	Optional  bool
}

// MinIO is where the object store is and how its webhook reaches
// dataset-intake.
type MinIO struct {
	// Endpoint is host:port of the S3 API (default
	// minio.<namespace>.svc.cluster.local:9000).
	Endpoint string
	Secure   bool
	// WebhookID names the webhook target (notify_webhook:<ID>, ARN
	// arn:minio:sqs::<ID>:webhook).
	WebhookID string
	// QueueDir is where every MinIO server keeps notifications that could
	// not be sent yet (a persistent path on the servers).
	QueueDir string
	// Buckets are made if missing; Notify is the one whose new objects
	// MinIO tells dataset-intake about.
	Buckets []string
	Notify  string
	// MCImage runs the Job that applies the configuration (mc).
	MCImage string
}

type options struct {
	namespace   string
	images      map[string]string
	registry    string
	placeholder string
	delivery    Delivery
	placement   Placement
	secretEnvs  map[string]SecretKey
	public      map[string]bool
	minio       MinIO
}

// Option configures Render.
type Option func(*options) error

var (
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	digestRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	durationRE = regexp.MustCompile(`^P(T(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$`)
)

// WithNamespace renders into namespace ns (default vp).
func WithNamespace(ns string) Option {
	return func(o *options) error {
		if !dnsLabelRE.MatchString(ns) || len(ns) > 63 {
			return &OptionError{Field: FieldNamespace, Value: ns, Err: fmt.Errorf("not a DNS-1123 label")}
		}
		o.namespace = ns
		return nil
	}
}

// WithImages gives each function (by name) its image, a reference by
// digest (REPO@sha256:...), as vp images build-functions pushes them.
// Functions it does not name get REGISTRY/NAME@PLACEHOLDER.
func WithImages(refs map[string]string) Option {
	return func(o *options) error {
		for fn, ref := range refs {
			d, err := name.NewDigest(ref)
			if err != nil {
				return &OptionError{Field: FieldImages, Value: fn + "=" + ref, Err: fmt.Errorf("not a reference by digest: %w", err)}
			}
			if !digestRE.MatchString(d.DigestStr()) {
				return &OptionError{Field: FieldImages, Value: fn + "=" + ref, Err: fmt.Errorf("not a sha256 digest")}
			}
		}
		o.images = maps.Clone(refs)
		return nil
	}
}

// WithRegistry is the repository of the functions' images that WithImages
// does not name, and the framework images' (VP_REGISTRY); default
// registry.example/vp.
func WithRegistry(repo string) Option {
	return func(o *options) error {
		repo = strings.TrimSuffix(repo, "/")
		if _, err := name.NewRepository(repo + "/probe"); err != nil || repo == "" {
			if err == nil {
				err = fmt.Errorf("empty")
			}
			return &OptionError{Field: FieldRegistry, Value: repo, Err: err}
		}
		o.registry = repo
		return nil
	}
}

// WithPlaceholderDigest is the digest of the images WithImages does not
// name (default sha256: and 64 zeros): a kustomize images: entry, or a
// render with the built images, replaces it.
func WithPlaceholderDigest(d string) Option {
	return func(o *options) error {
		if !digestRE.MatchString(d) {
			return &OptionError{Field: FieldPlaceholder, Value: d, Err: fmt.Errorf("not sha256: and 64 lower-case hex digits")}
		}
		o.placeholder = d
		return nil
	}
}

// WithDelivery sets the Broker's delivery spec (default DefaultDelivery).
func WithDelivery(d Delivery) Option {
	return func(o *options) error {
		switch {
		case d.Retry < 0:
			return &OptionError{Field: FieldDelivery, Value: fmt.Sprint(d.Retry), Err: fmt.Errorf("retry must not be negative")}
		case d.BackoffPolicy != "linear" && d.BackoffPolicy != "exponential":
			return &OptionError{Field: FieldDelivery, Value: d.BackoffPolicy, Err: fmt.Errorf("backoff policy must be linear or exponential")}
		case !durationRE.MatchString(d.BackoffDelay) || d.BackoffDelay == "P" || d.BackoffDelay == "PT":
			return &OptionError{Field: FieldDelivery, Value: d.BackoffDelay, Err: fmt.Errorf("backoff delay must be an ISO 8601 duration such as PT0.2S")}
		case d.Timeout != "" && (!durationRE.MatchString(d.Timeout) || d.Timeout == "P" || d.Timeout == "PT"):
			return &OptionError{Field: FieldDelivery, Value: d.Timeout, Err: fmt.Errorf("timeout must be an ISO 8601 duration such as PT60S")}
		}
		o.delivery = d
		return nil
	}
}

// WithPlacement sets where the gpu overlay puts the runs' pods (default
// DefaultPlacement).
func WithPlacement(p Placement) Option {
	return func(o *options) error {
		for k := range p.NodeSelector {
			if k == "" {
				return &OptionError{Field: FieldPlacement, Value: k, Err: fmt.Errorf("empty node label")}
			}
		}
		for _, t := range p.Tolerations {
			if t.Operator != "" && t.Operator != corev1.TolerationOpExists && t.Operator != corev1.TolerationOpEqual {
				return &OptionError{Field: FieldPlacement, Value: string(t.Operator), Err: fmt.Errorf("toleration operator must be Exists or Equal")}
			}
		}
		o.placement = p
		return nil
	}
}

// WithMinIO sets the object store's address and webhook (zero fields keep
// their defaults).
func WithMinIO(m MinIO) Option {
	return func(o *options) error {
		if m.Endpoint != "" {
			if strings.Contains(m.Endpoint, "/") {
				return &OptionError{Field: FieldMinIO, Value: m.Endpoint, Err: fmt.Errorf("endpoint is host:port, without a scheme")}
			}
			o.minio.Endpoint = m.Endpoint
		}
		o.minio.Secure = m.Secure
		if m.WebhookID != "" {
			o.minio.WebhookID = m.WebhookID
		}
		if m.QueueDir != "" {
			if !strings.HasPrefix(m.QueueDir, "/") {
				return &OptionError{Field: FieldMinIO, Value: m.QueueDir, Err: fmt.Errorf("queue dir must be an absolute path on the MinIO servers")}
			}
			o.minio.QueueDir = m.QueueDir
		}
		if m.Buckets != nil {
			o.minio.Buckets = m.Buckets
		}
		if m.Notify != "" {
			o.minio.Notify = m.Notify
		}
		if m.MCImage != "" {
			if _, err := name.ParseReference(m.MCImage); err != nil {
				return &OptionError{Field: FieldMC, Value: m.MCImage, Err: err}
			}
			o.minio.MCImage = m.MCImage
		}
		return nil
	}
}

// WithPublic names the functions reachable from outside the cluster
// (default: the gateway, the platform's front door); the others are
// cluster-local.
func WithPublic(functions ...string) Option {
	return func(o *options) error {
		o.public = map[string]bool{}
		for _, f := range functions {
			o.public[f] = true
		}
		return nil
	}
}

// Defaults.
const (
	DefaultNamespace   = "vp"
	DefaultRegistry    = "registry.example/vp"
	DefaultPlaceholder = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	DefaultMCImage     = "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z"
)

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		namespace:   DefaultNamespace,
		registry:    DefaultRegistry,
		placeholder: DefaultPlaceholder,
		delivery:    DefaultDelivery,
		placement:   DefaultPlacement(),
		// The settings func.yaml gives as {{ env:NAME }} that are
		// credentials: never in a ConfigMap.
		secretEnvs: map[string]SecretKey{
			"VP_S3_ACCESS_KEY": {Name: "vp-s3", Key: "accessKey"},
			"VP_S3_SECRET_KEY": {Name: "vp-s3", Key: "secretKey"},
			"VP_INTAKE_TOKEN":  {Name: "vp-intake", Key: "token"},
			// MLflow's credentials, when it asks for any.
			"VP_MLFLOW_TOKEN":    {Name: "vp-mlflow", Key: "token", Optional: true},
			"VP_MLFLOW_USERNAME": {Name: "vp-mlflow", Key: "username", Optional: true},
			"VP_MLFLOW_PASSWORD": {Name: "vp-mlflow", Key: "password", Optional: true},
		},
		public: map[string]bool{"gateway": true},
		minio: MinIO{
			WebhookID: "vp",
			QueueDir:  "/var/lib/minio-webhook-queue",
			Buckets:   []string{"datasets", "runs", "platform", "dead-letters"},
			Notify:    "datasets",
			MCImage:   DefaultMCImage,
		},
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.minio.Endpoint == "" {
		o.minio.Endpoint = "minio." + o.namespace + ".svc.cluster.local:9000"
	}
	return o, nil
}
