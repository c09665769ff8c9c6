package sender

import (
	"encoding/json"
	"fmt"
	"os"
)

// FromEnv makes a sender to the sink Knative injects: K_SINK is the URL
// (ErrNoSink when unset) and K_CE_OVERRIDES, when set, is
// {"extensions": {"name": "value", ...}}, set on every event. opts come
// after those, so they may override them.
func FromEnv(opts ...Option) (*HTTP, error) { return FromLookup(os.Getenv, opts...) }

// FromLookup is FromEnv with K_SINK and K_CE_OVERRIDES read through getenv
// (a function's configuration map, say) instead of the process
// environment.
func FromLookup(getenv func(string) string, opts ...Option) (*HTTP, error) {
	sink := getenv("K_SINK")
	if sink == "" {
		return nil, ErrNoSink
	}
	if v := getenv("K_CE_OVERRIDES"); v != "" {
		var ov struct {
			Extensions map[string]string `json:"extensions"`
		}
		if err := json.Unmarshal([]byte(v), &ov); err != nil {
			return nil, fmt.Errorf("decoding K_CE_OVERRIDES: %w", err)
		}
		opts = append([]Option{WithExtensions(ov.Extensions)}, opts...)
	}
	s, err := New(sink, opts...)
	if err != nil {
		return nil, fmt.Errorf("K_SINK: %w", err)
	}
	return s, nil
}
