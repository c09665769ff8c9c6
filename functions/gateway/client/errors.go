package client

import "errors"

var (
	// ErrGatewayURL is a gateway address that is not an http(s) URL.
	ErrGatewayURL = errors.New("not a gateway URL")
	// ErrNoToken is a client made without a token.
	ErrNoToken = errors.New("no bearer token")
	// ErrChecksum is a download whose bytes do not have the sha256 the
	// run reported.
	ErrChecksum = errors.New("sha256 mismatch")
	// ErrDiffers is a file the store holds, of the same size, with other
	// bytes, that cannot be put again.
	ErrDiffers = errors.New("the store holds other bytes under this name")
)
