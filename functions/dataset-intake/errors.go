package datasetintake

import "errors"

var (
	// ErrNoToken is Start's error when no bearer token is configured.
	ErrNoToken = errors.New("VP_INTAKE_TOKEN: required (the bearer token MinIO's webhook target sends: MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>)")
	// ErrChanged is an object that changed while the intake read it.
	ErrChanged = errors.New("changed while read")
)
