package broker

import "errors"

var (
	// ErrUnknownBroker is returned for an ingress path that names no broker.
	ErrUnknownBroker = errors.New("unknown broker")
	// ErrClosed is returned by a broker that has been closed.
	ErrClosed = errors.New("broker closed")
)

// ConfigError is a bad trigger file: the file, the line (0 when not known)
// and what is wrong.
type ConfigError struct {
	File   string
	Line   int
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return e.File + ":" + itoa(e.Line) + ": " + e.Reason
	}
	return e.File + ": " + e.Reason
}
