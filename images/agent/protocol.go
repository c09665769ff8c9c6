package agent

// The adapters' line protocol. images/python/PROTOCOL.md describes every
// kind and field; vp_sdk/protocol.py writes the lines and ParseLine reads
// them.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
)

// The kinds of protocol line this agent reads.
const (
	KindMetric = "metric"
	KindResume = "resume"
	KindFinal  = "final"
)

// Line is one protocol line: a MetricLine, ResumeLine, FinalLine or
// UnknownLine.
type Line interface{ protocolLine() }

// MetricLine is a metric line: the metrics of an epoch.
type MetricLine struct {
	Epoch int
	Step  int64
	// Time is the SDK's seconds since it started (0 when left out).
	Time float64
	// Metrics holds every other field; a null (a value that was not
	// finite) is left out.
	Metrics map[string]float64
}

// ResumeLine says that the adapter picked up a checkpoint: training goes on
// after Epoch, from Step.
type ResumeLine struct {
	Epoch int
	Step  int64
}

// FinalLine carries the run's final metrics; a null is left out.
type FinalLine struct {
	Metrics map[string]float64
}

// UnknownLine is a protocol line of a kind this agent does not read.
type UnknownLine struct {
	Kind string
}

func (MetricLine) protocolLine()  {}
func (ResumeLine) protocolLine()  {}
func (FinalLine) protocolLine()   {}
func (UnknownLine) protocolLine() {}

// metricReserved are the fields of a metric line that are not metrics.
var metricReserved = map[string]bool{"vp": true, "epoch": true, "step": true, "time": true}

// ParseLine reads one line of the adapter's standard output. A line that is
// not a protocol line (not a JSON object with a "vp" member: the
// framework's own output) gives nil and no error; a kind this agent does
// not read gives an UnknownLine; a line of a known kind with a field
// missing or of the wrong type gives an error naming the field.
func ParseLine(s string) (Line, error) {
	b := bytes.TrimSpace([]byte(s))
	if len(b) == 0 || b[0] != '{' {
		return nil, nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) != nil {
		return nil, nil
	}
	raw, ok := fields["vp"]
	if !ok {
		return nil, nil
	}
	var kind string
	if err := json.Unmarshal(raw, &kind); err != nil {
		return nil, fmt.Errorf("reading a protocol line: vp is %s, not a string", raw)
	}
	l, err := parseKind(kind, fields)
	if err != nil {
		return nil, fmt.Errorf("reading a %s line: %w", kind, err)
	}
	return l, nil
}

func parseKind(kind string, fields map[string]json.RawMessage) (Line, error) {
	switch kind {
	case KindMetric:
		var l MetricLine
		var err error
		if l.Epoch, l.Step, err = epochStep(fields); err != nil {
			return nil, err
		}
		if raw, ok := fields["time"]; ok {
			t, ok, err := number("time", raw)
			if err != nil {
				return nil, err
			}
			if ok {
				l.Time = t
			}
		}
		l.Metrics = map[string]float64{}
		for _, name := range slices.Sorted(maps.Keys(fields)) {
			if metricReserved[name] {
				continue
			}
			v, ok, err := number(name, fields[name])
			if err != nil {
				return nil, err
			}
			if ok {
				l.Metrics[name] = v
			}
		}
		return l, nil
	case KindResume:
		var l ResumeLine
		var err error
		l.Epoch, l.Step, err = epochStep(fields)
		return l, err
	case KindFinal:
		raw, ok := fields["metrics"]
		if !ok {
			return nil, errors.New("metrics is missing")
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return nil, fmt.Errorf("metrics is %s, not an object", raw)
		}
		l := FinalLine{Metrics: map[string]float64{}}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			v, ok, err := number("metrics."+name, m[name])
			if err != nil {
				return nil, err
			}
			if ok {
				l.Metrics[name] = v
			}
		}
		return l, nil
	default:
		return UnknownLine{Kind: kind}, nil
	}
}

// epochStep reads the required epoch and step of metric and resume lines.
func epochStep(fields map[string]json.RawMessage) (epoch int, step int64, err error) {
	e, err := count(fields, "epoch", math.MaxInt32)
	if err != nil {
		return 0, 0, err
	}
	step, err = count(fields, "step", math.MaxInt64)
	return int(e), step, err
}

// count reads a required integer field in [0, max].
func count(fields map[string]json.RawMessage, name string, max int64) (int64, error) {
	raw, ok := fields[name]
	if !ok {
		return 0, fmt.Errorf("%s is missing", name)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 0 || n > max {
		return 0, fmt.Errorf("%s is %s, not an integer from 0 to %d", name, raw, max)
	}
	return n, nil
}

// number reads a metric value: a JSON number, or null (ok false).
func number(name string, raw json.RawMessage) (v float64, ok bool, err error) {
	if string(raw) == "null" {
		return 0, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, false, fmt.Errorf("%s is %s, not a number", name, raw)
	}
	return v, true, nil
}
