package ociregistry

import (
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults of the options.
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 30 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultProgressTimeout is how long a request body may send nothing,
	// and a response wait for its client to take more bytes.
	DefaultProgressTimeout = time.Minute
	// DefaultUploadPurgeAge is how long an upload may see no activity
	// before it counts as abandoned and is removed.
	DefaultUploadPurgeAge = 24 * time.Hour
	// DefaultUploadPurgeInterval is how often abandoned uploads are looked
	// for (the first time when the registry starts).
	DefaultUploadPurgeInterval = time.Hour
)

// Option configures a Registry; see New.
type Option func(*options) error

type options struct {
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	progressTimeout   time.Duration
	purgeAge          time.Duration
	purgeInterval     time.Duration
	log               *logrus.Logger
}

func defaults() options {
	return options{
		readHeaderTimeout: DefaultReadHeaderTimeout,
		idleTimeout:       DefaultIdleTimeout,
		progressTimeout:   DefaultProgressTimeout,
		purgeAge:          DefaultUploadPurgeAge,
		purgeInterval:     DefaultUploadPurgeInterval,
	}
}

func positive(what string, d time.Duration, dst *time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s %s: %w", what, d, ErrNotPositive)
	}
	*dst = d
	return nil
}

// WithReadHeaderTimeout bounds reading a request's headers, from the
// connection's first byte or the end of its previous request (default 30 s).
// It applies to Serve.
func WithReadHeaderTimeout(d time.Duration) Option {
	return func(o *options) error { return positive("read header timeout", d, &o.readHeaderTimeout) }
}

// WithIdleTimeout closes a keep-alive connection that has waited this long
// for its next request (default 2 min). It applies to Serve.
func WithIdleTimeout(d time.Duration) Option {
	return func(o *options) error { return positive("idle timeout", d, &o.idleTimeout) }
}

// WithProgressTimeout cuts a request whose body has sent nothing for d, and,
// under Serve, a connection whose client has taken none of the response for
// d (default 1 min). The deadline moves with every byte, so an upload or a
// download of any size succeeds as long as it keeps moving.
func WithProgressTimeout(d time.Duration) Option {
	return func(o *options) error { return positive("progress timeout", d, &o.progressTimeout) }
}

// WithUploadPurgeAge removes an upload, with its directory, once it has
// seen no activity (no start, no bytes written) for d (default 24 h).
func WithUploadPurgeAge(d time.Duration) Option {
	return func(o *options) error { return positive("upload purge age", d, &o.purgeAge) }
}

// WithUploadPurgeInterval sets how often abandoned uploads are looked for
// (default 1 h); the first look is when the registry starts.
func WithUploadPurgeInterval(d time.Duration) Option {
	return func(o *options) error { return positive("upload purge interval", d, &o.purgeInterval) }
}

// WithLogger sends distribution's logs, and the registry's own, to l. By
// default they are discarded. The process-wide logrus logger is never used
// or changed by New.
func WithLogger(l *logrus.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("logger: nil")
		}
		o.log = l
		return nil
	}
}
