package objstore

import (
	"fmt"
	"os"
	"strconv"
)

// FromEnv connects to the store the environment names: VP_S3_ENDPOINT
// (host:port, or an http:// or https:// URL; ErrNoEndpoint when unset),
// VP_S3_ACCESS_KEY / VP_S3_SECRET_KEY / VP_S3_SESSION_TOKEN (or
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN) and
// VP_S3_SECURE (true for TLS; default false).
func FromEnv() (*MinIO, error) { return FromLookup(os.Getenv) }

// FromLookup is FromEnv with the settings read through getenv (a function's
// configuration map, say) instead of the process environment.
func FromLookup(getenv func(string) string) (*MinIO, error) {
	endpoint := getenv("VP_S3_ENDPOINT")
	if endpoint == "" {
		return nil, ErrNoEndpoint
	}
	secure := false
	if v := getenv("VP_S3_SECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("VP_S3_SECURE %q is not a boolean", v)
		}
		secure = b
	}
	creds := Credentials{
		AccessKey:    firstEnv(getenv, "VP_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
		SecretKey:    firstEnv(getenv, "VP_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
		SessionToken: firstEnv(getenv, "VP_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
	}
	m, err := NewMinIO(endpoint, creds, secure)
	if err != nil {
		return nil, fmt.Errorf("VP_S3_ENDPOINT: %w", err)
	}
	return m, nil
}

func firstEnv(getenv func(string) string, keys ...string) string {
	for _, k := range keys {
		if v := getenv(k); v != "" {
			return v
		}
	}
	return ""
}
