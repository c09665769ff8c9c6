package broker

import "errors"

var (
	// ErrUnknownBroker is returned for an ingress path that names no broker.
	ErrUnknownBroker = errors.New("unknown broker")
	// ErrClosed is returned by a broker that has been closed.
	ErrClosed = errors.New("broker closed")
)
