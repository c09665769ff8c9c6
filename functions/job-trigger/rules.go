package jobtrigger

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/strictyaml"
	"github.com/vision-platform/vp/registry"
)

// Rules are the function's auto-train rules (VP_TRIGGER_RULES): datasets
// whose dataset.yaml has no train block train as the first matching rule
// says.
//
//	rules:
//	  - bucket: datasets            # exact; empty for any bucket
//	    prefix: "pets/*"            # a glob (path.Match: * stays within a folder) or a key prefix; empty for any
//	    model: torchvision/resnet18
//	    hyperparameters: {epochs: 5}  # as in dataset.yaml's train block
//	    resources: {gpus: 0}
type Rules struct {
	Rules []Rule `yaml:"rules"`

	file string
	doc  strictyaml.Document
}

// Rule is one rule.
type Rule struct {
	Bucket          string                       `yaml:"bucket,omitempty"`
	Prefix          string                       `yaml:"prefix,omitempty"`
	Model           string                       `yaml:"model"`
	Hyperparameters dataset.TrainHyperparameters `yaml:"hyperparameters,omitempty"`
	Resources       dataset.TrainResources       `yaml:"resources,omitempty"`
}

// ParseRules decodes rules; file names them in errors, which carry the
// line and the field.
func ParseRules(file string, data []byte) (*Rules, error) {
	var out *Rules
	err := strictyaml.DecodeAll(file, data, func(doc strictyaml.Document, r *Rules) error {
		if out != nil {
			return &strictyaml.Error{File: file, Line: doc.Line(), Reason: "rules are one document"}
		}
		errs := &strictyaml.Errors{File: file, Doc: doc}
		r.file, r.doc = file, doc
		r.validate(errs)
		out = r
		return errs.Err()
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = &Rules{file: file}
	}
	return out, nil
}

// LoadRules reads VP_TRIGGER_RULES: the path of a YAML (or JSON) file of
// rules, or the rules themselves. Empty is no rules.
func LoadRules(value string) (*Rules, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return &Rules{}, nil
	}
	if !strings.ContainsAny(value, "\n:{[") {
		b, err := os.ReadFile(value)
		if err != nil {
			return nil, fmt.Errorf("VP_TRIGGER_RULES: reading the rules file: %w", err)
		}
		return ParseRules(value, b)
	}
	if _, err := os.Stat(value); err == nil {
		b, err := os.ReadFile(value)
		if err != nil {
			return nil, fmt.Errorf("VP_TRIGGER_RULES: reading the rules file: %w", err)
		}
		return ParseRules(value, b)
	}
	return ParseRules("VP_TRIGGER_RULES", []byte(value))
}

func (r *Rules) validate(errs *strictyaml.Errors) {
	for i, rule := range r.Rules {
		at := "rules." + strconv.Itoa(i) + "."
		fw, name, ok := strings.Cut(rule.Model, "/")
		if !ok || fw == "" || name == "" || strings.Contains(name, "/") {
			errs.Add(at+"model", "%q is not framework/name (e.g. torchvision/resnet18)", rule.Model)
		}
		if strings.ContainsAny(rule.Prefix, "*?[") {
			if _, err := path.Match(rule.Prefix, ""); err != nil {
				errs.Add(at+"prefix", "%q is not a glob: %v", rule.Prefix, err)
			}
		}
		h := rule.Hyperparameters
		for _, c := range []struct {
			field string
			bad   bool
		}{
			{"epochs", h.Epochs < 0}, {"batchSize", h.BatchSize < 0}, {"learningRate", h.LearningRate < 0},
			{"imageSize", h.ImageSize != 0 && h.ImageSize < 8},
		} {
			if c.bad {
				errs.Add(at+"hyperparameters."+c.field, "out of range (leave it out for the model's default)")
			}
		}
		if rule.Resources.GPUs < 0 {
			errs.Add(at+"resources.gpus", "must not be negative")
		}
		if ex := rule.Resources.Executor; ex != "" && ex != "auto" && !slices.Contains(events.Executors, ex) {
			errs.Add(at+"resources.executor", "%q is not auto or one of %s", ex, strings.Join(events.Executors, ", "))
		}
	}
}

// checkModels says which rules name a model the catalog lacks.
func (r *Rules) checkModels(c *registry.Catalog) error {
	errs := &strictyaml.Errors{File: r.file, Doc: r.doc}
	for i, rule := range r.Rules {
		fw, name, _ := strings.Cut(rule.Model, "/")
		if _, err := c.Lookup(fw, name); err != nil {
			errs.Add(fmt.Sprintf("rules.%d.model", i), "no model %s in the catalog", rule.Model)
		}
	}
	return errs.Err()
}

// Match is the first rule for a dataset at bucket/prefix, and its index.
func (r *Rules) Match(bucket, prefix string) (Rule, int, bool) {
	for i, rule := range r.Rules {
		if rule.Bucket != "" && rule.Bucket != bucket {
			continue
		}
		if matchPrefix(rule.Prefix, prefix) {
			return rule, i, true
		}
	}
	return Rule{}, -1, false
}

// matchPrefix matches a dataset's prefix against a rule's: a glob
// matches the prefix without its trailing '/'; anything else is a key
// prefix.
func matchPrefix(pattern, prefix string) bool {
	if pattern == "" {
		return true
	}
	if strings.ContainsAny(pattern, "*?[") {
		ok, _ := path.Match(strings.TrimSuffix(pattern, "/"), strings.TrimSuffix(prefix, "/"))
		return ok
	}
	return strings.HasPrefix(prefix, pattern)
}

// at is "file:line" of the field at a dotted path of the rules.
func (r *Rules) at(p string) string {
	if r.doc.Node == nil {
		return r.file
	}
	return fmt.Sprintf("%s:%d", r.file, r.doc.Line(strings.Split(p, ".")...))
}
