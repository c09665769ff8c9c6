package broker

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vision-platform/vp/events/filter"
	"github.com/vision-platform/vp/internal/strictyaml"
)

// Trigger is a Knative eventing.knative.dev/v1 Trigger, as kubectl takes it.
type Trigger struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Metadata   ObjectMeta  `yaml:"metadata"`
	Spec       TriggerSpec `yaml:"spec"`
	Status     yaml.Node   `yaml:"status,omitempty"` // ignored, as kubectl apply does
}

// ObjectMeta is the part of Kubernetes object metadata a trigger file uses.
type ObjectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// TriggerSpec is a Trigger's spec.
type TriggerSpec struct {
	Broker     string             `yaml:"broker"`
	Filter     *filter.Attributes `yaml:"filter,omitempty"`
	Filters    []filter.Filter    `yaml:"filters,omitempty"`
	Subscriber Destination        `yaml:"subscriber"`
	Delivery   *DeliverySpec      `yaml:"delivery,omitempty"`

	// Knative fields the local broker does not support: set, they are an
	// error naming them.
	BrokerRef yaml.Node `yaml:"brokerRef,omitempty"`
}

// Destination is a Knative duckv1.Destination; only uri is supported.
type Destination struct {
	URI      string    `yaml:"uri,omitempty"`
	Ref      yaml.Node `yaml:"ref,omitempty"`
	CACerts  yaml.Node `yaml:"CACerts,omitempty"`
	Audience yaml.Node `yaml:"audience,omitempty"`
}

// DeliverySpec is Knative's delivery spec.
type DeliverySpec struct {
	Retry          *int32       `yaml:"retry,omitempty"`
	BackoffPolicy  string       `yaml:"backoffPolicy,omitempty"`
	BackoffDelay   string       `yaml:"backoffDelay,omitempty"`
	DeadLetterSink *Destination `yaml:"deadLetterSink,omitempty"`
	Timeout        string       `yaml:"timeout,omitempty"`
	RetryAfterMax  yaml.Node    `yaml:"retryAfterMax,omitempty"`
	Format         yaml.Node    `yaml:"format,omitempty"`
}

// Delivery is a validated delivery spec.
type Delivery struct {
	Retry       int
	Exponential bool
	Delay       time.Duration
	Timeout     time.Duration
	DeadLetter  string // "" for none
}

// Backoff is the wait before retry n (1 for the first retry): delay×n when
// linear, delay×2^n when exponential, as Knative computes it, and never
// more than MaxDeliveryDuration.
func (d Delivery) Backoff(n int) time.Duration {
	if d.Delay <= 0 || n <= 0 {
		return 0
	}
	factor := time.Duration(n)
	if d.Exponential {
		if n > 62 {
			return MaxDeliveryDuration
		}
		factor = 1 << n
	}
	if factor > MaxDeliveryDuration/d.Delay {
		return MaxDeliveryDuration
	}
	return d.Delay * factor
}

// DefaultDelivery is what a trigger without spec.delivery gets: the
// delivery of Knative's default config-br-defaults (10 retries, exponential
// from 0.2 s), with a 60 s request timeout.
var DefaultDelivery = Delivery{Retry: 10, Exponential: true, Delay: 200 * time.Millisecond, Timeout: 60 * time.Second}

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// triggerConfig is a trigger ready to run.
type triggerConfig struct {
	Namespace, Name, Broker string
	Subscriber              string
	Matcher                 filter.Matcher
	Delivery                Delivery
}

func (t triggerConfig) key() string { return t.Namespace + "/" + t.Name }

// LoadTriggers reads a file of Trigger objects (multi-document YAML).
func LoadTriggers(path string) ([]Trigger, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading triggers: %w", err)
	}
	return ParseTriggers(path, b)
}

// ParseTriggers decodes and validates the Trigger objects in data; name is
// the file name used in errors. Every error names the file and line.
func ParseTriggers(name string, data []byte) ([]Trigger, error) {
	var out []Trigger
	seen := map[string]int{}
	err := strictyaml.DecodeAll(name, data, func(doc strictyaml.Document, tr *Trigger) error {
		if tr.Metadata.Namespace == "" {
			tr.Metadata.Namespace = "default"
		}
		if tr.Spec.Broker == "" {
			tr.Spec.Broker = "default"
		}
		errs := &strictyaml.Errors{File: name, Doc: doc}
		validateTrigger(tr, errs)
		k := tr.Metadata.Namespace + "/" + tr.Metadata.Name
		if line, dup := seen[k]; dup && tr.Metadata.Name != "" {
			errs.List = append(errs.List, &strictyaml.Error{File: name, Line: doc.Line(), Reason: fmt.Sprintf("trigger %s is defined twice (first at line %d)", k, line)})
		}
		seen[k] = doc.Line()
		out = append(out, *tr)
		return errs.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func validateTrigger(tr *Trigger, errs *strictyaml.Errors) {
	bad := errs.Add
	unsupported := func(path string, n yaml.Node, hint string) {
		if n.Kind != 0 {
			errs.List = append(errs.List, &strictyaml.Error{File: errs.File, Line: errs.Doc.Line(strings.Split(path, ".")...), Reason: path + " is not supported by the local broker" + hint})
		}
	}
	if tr.APIVersion != "eventing.knative.dev/v1" {
		bad("apiVersion", "must be eventing.knative.dev/v1, got %q", tr.APIVersion)
	}
	if tr.Kind != "Trigger" {
		bad("kind", "must be Trigger, got %q", tr.Kind)
	}
	if !dnsLabelRE.MatchString(tr.Metadata.Name) || len(tr.Metadata.Name) > 63 {
		bad("metadata.name", "%q is not a DNS-1123 label", tr.Metadata.Name)
	}
	if !dnsLabelRE.MatchString(tr.Metadata.Namespace) || len(tr.Metadata.Namespace) > 63 {
		bad("metadata.namespace", "%q is not a DNS-1123 label", tr.Metadata.Namespace)
	}
	if !dnsLabelRE.MatchString(tr.Spec.Broker) {
		bad("spec.broker", "%q is not a DNS-1123 label", tr.Spec.Broker)
	}
	unsupported("spec.brokerRef", tr.Spec.BrokerRef, ": use spec.broker")
	checkDest := func(path string, d Destination) {
		unsupported(path+".ref", d.Ref, ": there is no Kubernetes API to resolve it; use "+path+".uri")
		unsupported(path+".CACerts", d.CACerts, "")
		unsupported(path+".audience", d.Audience, "")
		if d.URI == "" && d.Ref.Kind == 0 {
			bad(path+".uri", "required")
			return
		}
		if d.URI != "" {
			if u, err := url.Parse(d.URI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(path+".uri", "%q is not an absolute http(s) URL", d.URI)
			}
		}
	}
	checkDest("spec.subscriber", tr.Spec.Subscriber)
	if _, err := filter.Compile(tr.Spec.Filter, tr.Spec.Filters); err != nil {
		var fe filter.Errors
		if errors.As(err, &fe) {
			for _, e := range fe {
				p := "spec." + e.Field
				base := strings.SplitN(p, "[", 2)[0]
				errs.List = append(errs.List, &strictyaml.Error{File: errs.File, Line: errs.Doc.Line(strings.Split(base, ".")...), Reason: p + ": " + e.Reason})
			}
		} else {
			bad("spec.filters", "%v", err)
		}
	}
	if d := tr.Spec.Delivery; d != nil {
		unsupported("spec.delivery.retryAfterMax", d.RetryAfterMax, "")
		unsupported("spec.delivery.format", d.Format, "")
		if d.Retry != nil && *d.Retry < 0 {
			bad("spec.delivery.retry", "must not be negative, got %d", *d.Retry)
		}
		switch d.BackoffPolicy {
		case "", "linear", "exponential":
		default:
			bad("spec.delivery.backoffPolicy", "must be linear or exponential, got %q", d.BackoffPolicy)
		}
		if _, err := deliveryDuration(d.BackoffDelay); err != nil {
			bad("spec.delivery.backoffDelay", "%v", err)
		}
		if _, err := deliveryDuration(d.Timeout); err != nil {
			bad("spec.delivery.timeout", "%v", err)
		}
		if d.DeadLetterSink != nil {
			checkDest("spec.delivery.deadLetterSink", *d.DeadLetterSink)
		}
	}
}

// deliveryDuration parses a delivery spec's ISO-8601 duration: positive and
// at most MaxDeliveryDuration.
func deliveryDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	v, err := ParseISODuration(s)
	switch {
	case err != nil:
		return 0, err
	case v <= 0:
		return 0, errors.New("must be positive")
	case v > MaxDeliveryDuration:
		return 0, fmt.Errorf("%s is over the limit of %v", s, MaxDeliveryDuration)
	}
	return v, nil
}

// compileTrigger turns a validated Trigger into what the dispatcher runs,
// delivery defaults from def.
func compileTrigger(tr Trigger, def Delivery) (triggerConfig, error) {
	m, err := filter.Compile(tr.Spec.Filter, tr.Spec.Filters)
	if err != nil {
		return triggerConfig{}, err
	}
	d := def
	if s := tr.Spec.Delivery; s != nil {
		if s.Retry != nil {
			d.Retry = int(*s.Retry)
		}
		switch s.BackoffPolicy {
		case "linear":
			d.Exponential = false
		case "exponential":
			d.Exponential = true
		}
		if s.BackoffDelay != "" {
			if d.Delay, err = deliveryDuration(s.BackoffDelay); err != nil {
				return triggerConfig{}, fmt.Errorf("spec.delivery.backoffDelay: %w", err)
			}
		}
		if s.Timeout != "" {
			if d.Timeout, err = deliveryDuration(s.Timeout); err != nil {
				return triggerConfig{}, fmt.Errorf("spec.delivery.timeout: %w", err)
			}
		}
		if s.DeadLetterSink != nil {
			d.DeadLetter = s.DeadLetterSink.URI
		}
	}
	return triggerConfig{
		Namespace:  tr.Metadata.Namespace,
		Name:       tr.Metadata.Name,
		Broker:     tr.Spec.Broker,
		Subscriber: tr.Spec.Subscriber.URI,
		Matcher:    m,
		Delivery:   d,
	}, nil
}
