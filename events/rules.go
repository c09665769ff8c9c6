package events

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// The payload rules are written once, in the structs' schema tags:
// "pattern=@jobID", "enum=@task", "minimum=1", "minLength=1", "minItems=1".
// A name after @ is one of the named patterns and lists below; the JSON
// Schemas in events/schemas are generated from the same tags
// (GenerateSchema), and Validate checks them (checkTags), so a rule cannot
// say one thing in a schema and another in the code. The payloads'
// validate methods add only what a tag cannot say (a rule across fields).

// namedPattern is a pattern with the words used for it in error messages.
type namedPattern struct {
	re   *regexp.Regexp
	what string
}

var patterns = map[string]namedPattern{
	"jobID":       {regexp.MustCompile(`^job-[a-f0-9]{20}$`), "job-<20 hex>"},
	"digest":      {regexp.MustCompile(`^sha256:[a-f0-9]{64}$`), "sha256:<64 hex>"},
	"hex64":       {regexp.MustCompile(`^[a-f0-9]{64}$`), "64 hex digits"},
	"bucket":      {regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`), "a valid bucket name"},
	"name":        {regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`), "a name (letters, digits, '.', '_', '-')"},
	"s3URI":       {regexp.MustCompile(`^s3://`), "an s3:// URI"},
	"refByDigest": {regexp.MustCompile(`@sha256:[a-f0-9]{64}$`), "a reference by digest (repo@sha256:<64 hex>)"},
}

// Executors are the executors a run can be launched by, as run.started
// reports them; the gpu-runner's executor package names its executors
// from this list.
var Executors = []string{"process", "docker", "kubernetes"}

var enums = map[string][]string{
	"task":   tasks,
	"format": formats,
	"status": statuses,
	// executor is what ran a run; executorChoice what a job may ask for
	// ("" and auto let the gpu-runner choose).
	"executor":       Executors,
	"executorChoice": append([]string{"", "auto"}, Executors...),
}

// tagRule is one constraint of a schema tag.
type tagRule struct{ key, val string }

func parseTag(tag string) []tagRule {
	if tag == "" {
		return nil
	}
	var out []tagRule
	for _, c := range strings.Split(tag, ";") {
		k, v, _ := strings.Cut(c, "=")
		out = append(out, tagRule{k, v})
	}
	return out
}

// pattern resolves a pattern rule's value: @name or a literal expression.
func pattern(v string) namedPattern {
	if name, ok := strings.CutPrefix(v, "@"); ok {
		p, ok := patterns[name]
		if !ok {
			panic("events: unknown named pattern @" + name)
		}
		return p
	}
	return namedPattern{regexp.MustCompile(v), "/" + v + "/"}
}

// enum resolves an enum rule's value: @name or a|b|c.
func enum(v string) []string {
	if name, ok := strings.CutPrefix(v, "@"); ok {
		e, ok := enums[name]
		if !ok {
			panic("events: unknown named enum @" + name)
		}
		return e
	}
	return strings.Split(v, "|")
}

// checkTags checks every field of the struct v against its schema tag,
// recursing into structs and slices of structs, and adds a field error
// under its JSON name for each rule broken. A field marked omitempty that
// holds its zero value is absent from the JSON and not checked.
func checkTags(v reflect.Value, f fields) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf, fv := t.Field(i), v.Field(i)
		if sf.Anonymous {
			checkTags(fv, f)
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		if strings.Contains(opts, "omitempty") && fv.IsZero() {
			continue
		}
		for _, r := range parseTag(sf.Tag.Get("schema")) {
			checkRule(f, name, r, fv)
		}
		switch {
		case fv.Kind() == reflect.Struct && fv.Type() != timeType:
			checkTags(fv, f.at(name))
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
			for j := 0; j < fv.Len(); j++ {
				checkTags(fv.Index(j), f.at(name).index(j))
			}
		}
	}
}

func checkRule(f fields, name string, r tagRule, v reflect.Value) {
	switch r.key {
	case "pattern":
		p := pattern(r.val)
		if s := v.String(); !p.re.MatchString(s) {
			if s == "" {
				f.add(name, "required (%s)", p.what)
			} else {
				f.add(name, "%q is not %s", s, p.what)
			}
		}
	case "enum":
		allowed := enum(r.val)
		s := v.String()
		for _, a := range allowed {
			if s == a {
				return
			}
		}
		if s == "" {
			f.add(name, "required (one of %s)", strings.Join(allowed, ", "))
		} else {
			f.add(name, "%q is not one of %s", s, strings.Join(nonEmpty(allowed), ", "))
		}
	case "minLength":
		if n := atoi(r.val); len(strings.TrimSpace(v.String())) < n {
			if n == 1 {
				f.add(name, "required")
			} else {
				f.add(name, "must be at least %d characters", n)
			}
		}
	case "minItems":
		if n := atoi(r.val); v.Len() < n {
			f.add(name, "at least %d required, got %d", n, v.Len())
		}
	case "minimum":
		if x, min := number(v), float(r.val); x < min {
			f.add(name, "must be at least %s, got %s", r.val, fmtNumber(v))
		}
	case "exclusiveMinimum":
		if x, min := number(v), float(r.val); !(x > min) {
			f.add(name, "must be greater than %s, got %s", r.val, fmtNumber(v))
		}
	}
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic("events: bad schema tag number " + strconv.Quote(s))
	}
	return n
}

func float(s string) float64 {
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic("events: bad schema tag number " + strconv.Quote(s))
	}
	return x
}

func number(v reflect.Value) float64 {
	switch {
	case v.CanInt():
		return float64(v.Int())
	case v.CanUint():
		return float64(v.Uint())
	case v.CanFloat():
		return v.Float()
	}
	panic("events: minimum on a non-number field of type " + v.Type().String())
}

func fmtNumber(v reflect.Value) string {
	if v.CanFloat() {
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}
