package funcyaml

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vision-platform/vp/internal/strictyaml"
)

// Function is a func.yaml: the fields of the func CLI's schema. Fields the
// platform does not read (build, volumes, ...) are kept as YAML nodes so a
// file the func CLI wrote still loads.
type Function struct {
	SpecVersion string     `yaml:"specVersion"`
	Name        string     `yaml:"name"`
	Runtime     string     `yaml:"runtime"`
	Registry    string     `yaml:"registry,omitempty"`
	Image       string     `yaml:"image,omitempty"`
	Namespace   string     `yaml:"namespace,omitempty"`
	Created     string     `yaml:"created"`
	Domain      string     `yaml:"domain,omitempty"`
	Invoke      string     `yaml:"invoke,omitempty"`
	Build       yaml.Node  `yaml:"build,omitempty"`
	Run         RunSpec    `yaml:"run,omitempty"`
	Deploy      DeploySpec `yaml:"deploy,omitempty"`
}

// RunSpec is how the function runs.
type RunSpec struct {
	Envs               []Env     `yaml:"envs,omitempty"`
	Volumes            yaml.Node `yaml:"volumes,omitempty"`
	PodSecurityContext yaml.Node `yaml:"podSecurityContext,omitempty"`
	StartTimeout       int       `yaml:"startTimeout,omitempty"`
}

// Env is one environment variable. A value may be a literal or the func
// CLI's reference syntax ({{ env:NAME }}, {{ secret:NAME:KEY }}, ...).
type Env struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// DeploySpec is how the function is deployed.
type DeploySpec struct {
	Namespace          string            `yaml:"namespace,omitempty"`
	Image              string            `yaml:"image,omitempty"`
	Annotations        map[string]string `yaml:"annotations,omitempty"`
	Options            Options           `yaml:"options,omitempty"`
	Labels             []Label           `yaml:"labels,omitempty"`
	HealthEndpoints    HealthEndpoints   `yaml:"healthEndpoints,omitempty"`
	ServiceAccountName string            `yaml:"serviceAccountName,omitempty"`
	Subscriptions      []Subscription    `yaml:"subscriptions,omitempty"`
}

// Options are the scaling and resource settings of the Knative Service.
type Options struct {
	Scale     *ScaleOptions     `yaml:"scale,omitempty"`
	Resources *ResourcesOptions `yaml:"resources,omitempty"`
}

// ScaleOptions bound the Knative autoscaler.
type ScaleOptions struct {
	Min         *int64   `yaml:"min,omitempty"`
	Max         *int64   `yaml:"max,omitempty"`
	Metric      string   `yaml:"metric,omitempty"`
	Target      *float64 `yaml:"target,omitempty"`
	Utilization *float64 `yaml:"utilization,omitempty"`
}

// ResourcesOptions are the container's requests and limits.
type ResourcesOptions struct {
	Requests *ResourceList `yaml:"requests,omitempty"`
	Limits   *ResourceList `yaml:"limits,omitempty"`
}

// ResourceList holds Kubernetes quantities; Concurrency (limits only) is
// the container concurrency.
type ResourceList struct {
	CPU         string `yaml:"cpu,omitempty"`
	Memory      string `yaml:"memory,omitempty"`
	Concurrency *int64 `yaml:"concurrency,omitempty"`
}

// Label is a Kubernetes label.
type Label struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value,omitempty"`
}

// HealthEndpoints are the probes' paths.
type HealthEndpoints struct {
	Liveness  string `yaml:"liveness,omitempty"`
	Readiness string `yaml:"readiness,omitempty"`
}

// Subscription is one Trigger: events from a broker (Source) whose
// attributes equal every filter (Knative's filter.attributes).
type Subscription struct {
	Source  string            `yaml:"source"`
	Filters map[string]string `yaml:"filters,omitempty"`
}

// Invoke hints of the func CLI.
const (
	InvokeHTTP       = "http"
	InvokeCloudEvent = "cloudevent"
)

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envNameRE  = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	attrNameRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)
	quantityRE = regexp.MustCompile(`^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$`)
)

// Parse decodes one func.yaml; file names it in errors, which carry the
// line and the field.
func Parse(file string, data []byte) (*Function, error) {
	var out *Function
	n := 0
	err := strictyaml.DecodeAll(file, data, func(doc strictyaml.Document, f *Function) error {
		n++
		if n > 1 {
			return &strictyaml.Error{File: file, Line: doc.Line(), Reason: "a func.yaml holds one document"}
		}
		errs := &strictyaml.Errors{File: file, Doc: doc}
		f.validate(errs)
		out = f
		return errs.Err()
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, &strictyaml.Error{File: file, Reason: "empty func.yaml"}
	}
	return out, nil
}

func (f *Function) validate(errs *strictyaml.Errors) {
	if f.SpecVersion == "" {
		errs.Add("specVersion", "required")
	}
	if !nameRE.MatchString(f.Name) {
		errs.Add("name", "%q is not a DNS label (lower-case letters, digits and '-')", f.Name)
	}
	if f.Runtime != "go" {
		errs.Add("runtime", "%q: the platform's functions are Go functions (runtime: go)", f.Runtime)
	}
	switch f.Invoke {
	case "", InvokeHTTP, InvokeCloudEvent:
	default:
		errs.Add("invoke", "%q is not http or cloudevent", f.Invoke)
	}
	for i, e := range f.Run.Envs {
		if !envNameRE.MatchString(e.Name) {
			errs.Add(fmt.Sprintf("run.envs.%d.name", i), "%q is not an environment variable name", e.Name)
		}
	}
	if s := f.Deploy.Options.Scale; s != nil {
		if s.Min != nil && *s.Min < 0 {
			errs.Add("deploy.options.scale.min", "must not be negative")
		}
		if s.Max != nil && *s.Max < 0 {
			errs.Add("deploy.options.scale.max", "must not be negative")
		}
		if s.Min != nil && s.Max != nil && *s.Max > 0 && *s.Min > *s.Max {
			errs.Add("deploy.options.scale.max", "%d is below min %d", *s.Max, *s.Min)
		}
		switch s.Metric {
		case "", "concurrency", "rps":
		default:
			errs.Add("deploy.options.scale.metric", "%q is not concurrency or rps", s.Metric)
		}
		if s.Utilization != nil && (*s.Utilization < 1 || *s.Utilization > 100) {
			errs.Add("deploy.options.scale.utilization", "must be between 1 and 100")
		}
	}
	if r := f.Deploy.Options.Resources; r != nil {
		for name, l := range map[string]*ResourceList{"requests": r.Requests, "limits": r.Limits} {
			if l == nil {
				continue
			}
			base := "deploy.options.resources." + name
			if l.CPU != "" && !quantityRE.MatchString(l.CPU) {
				errs.Add(base+".cpu", "%q is not a Kubernetes quantity", l.CPU)
			}
			if l.Memory != "" && !quantityRE.MatchString(l.Memory) {
				errs.Add(base+".memory", "%q is not a Kubernetes quantity", l.Memory)
			}
			if l.Concurrency != nil && (name == "requests" || *l.Concurrency < 0) {
				errs.Add(base+".concurrency", "only limits.concurrency, at least 0")
			}
		}
	}
	for i, s := range f.Deploy.Subscriptions {
		base := fmt.Sprintf("deploy.subscriptions.%d", i)
		if s.Source == "" {
			errs.Add(base+".source", "required (the broker's name, e.g. default)")
		}
		for _, k := range slices.Sorted(maps.Keys(s.Filters)) {
			if !attrNameRE.MatchString(k) {
				errs.Add(base+".filters", "%q is not a CloudEvents attribute name (lower-case letters and digits)", k)
			}
		}
	}
}

// Env returns the value of a run env, and whether it is set.
func (f *Function) Env(name string) (string, bool) {
	for _, e := range f.Run.Envs {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// TriggerName is the name of the Trigger of subscription i: the function's
// name, with the event type's last part when it filters on one type.
func (f *Function) TriggerName(i int) string {
	s := f.Deploy.Subscriptions[i]
	name := f.Name
	if t := s.Filters["type"]; t != "" {
		parts := strings.Split(t, ".")
		tail := parts[len(parts)-1]
		if len(parts) >= 2 {
			tail = parts[len(parts)-2] + "-" + tail
		}
		name += "-" + tail
	} else if len(f.Deploy.Subscriptions) > 1 {
		name += fmt.Sprintf("-%d", i)
	}
	return strings.ToLower(name)
}
