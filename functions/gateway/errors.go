package gateway

import "errors"

var (
	// ErrNoTokens is Start's error when no bearer token is configured.
	ErrNoTokens = errors.New("no bearer tokens: set VP_GATEWAY_TOKENS (name:scope:token,...) or VP_GATEWAY_TOKENS_FILE (a YAML file of tokens)")
	// ErrNotStarted answers requests before Start.
	ErrNotStarted = errors.New("the gateway is not started")
	// ErrMultipart is Start's error when the store cannot do multipart
	// uploads (it is not MinIO's client).
	ErrMultipart = errors.New("the store cannot presign multipart uploads")
)
