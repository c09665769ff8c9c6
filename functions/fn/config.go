package fn

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/internal/objstore"
)

// Config is a function's settings: what func-go passes to Start, or what
// vp up builds for the functions it runs in one process.
type Config map[string]string

// Get is the value of name, "" when unset.
func (c Config) Get(name string) string { return c[name] }

// Or is the value of name, or def when unset or empty.
func (c Config) Or(name, def string) string {
	if v := c[name]; v != "" {
		return v
	}
	return def
}

// Duration reads a Go duration ("30s"); def when unset.
func (c Config) Duration(name string, def time.Duration) (time.Duration, error) {
	v := c[name]
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: %q is not a duration such as 30s or 5m", name, v)
	}
	return d, nil
}

// Int reads a non-negative integer; def when unset.
func (c Config) Int(name string, def int) (int, error) {
	v := c[name]
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a non-negative integer", name, v)
	}
	return n, nil
}

// Bool reads true/false (1/0, ...); def when unset.
func (c Config) Bool(name string, def bool) (bool, error) {
	v := c[name]
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not true or false", name, v)
	}
	return b, nil
}

// Store connects to the object store VP_S3_* names.
func (c Config) Store() (objstore.Store, error) {
	s, err := objstore.FromLookup(c.Get)
	if err != nil {
		return nil, fmt.Errorf("configuring the object store: %w", err)
	}
	return s, nil
}

// Sender posts to K_SINK (the broker's ingress), with the platform's one
// retry policy.
func (c Config) Sender() (sender.Interface, error) {
	s, err := sender.FromLookup(c.Get)
	if err != nil {
		return nil, fmt.Errorf("configuring the event sink: %w", err)
	}
	return s, nil
}

// SetLogger sets *l to the function's logger (Logger) unless an option set
// one already.
func (c Config) SetLogger(l **zerolog.Logger, function string) error {
	if *l != nil {
		return nil
	}
	log, err := c.Logger(function)
	if err != nil {
		return err
	}
	*l = &log
	return nil
}

// SetStore sets *s to the store VP_S3_* names (Store) unless an option set
// one already.
func (c Config) SetStore(s *objstore.Store) error {
	if *s != nil {
		return nil
	}
	st, err := c.Store()
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// Logger is zerolog to standard error in VP_LOG_FORMAT (json, the default,
// or console) at VP_LOG_LEVEL (info by default), naming the function.
func (c Config) Logger(function string) (zerolog.Logger, error) {
	return NewLogger(os.Stderr, c.Or("VP_LOG_FORMAT", "json"), c.Or("VP_LOG_LEVEL", "info"), function)
}

// NewLogger is zerolog to w in format json or console at level, naming the
// function.
func NewLogger(w io.Writer, format, level, function string) (zerolog.Logger, error) {
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Nop(), fmt.Errorf("VP_LOG_FORMAT: %q is not json or console", format)
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("VP_LOG_LEVEL: %q is not a level (debug, info, warn, error)", level)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("function", function).Logger(), nil
}
