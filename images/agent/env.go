package agent

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/rs/zerolog"
)

// Logger is zerolog to w, JSON or console.
func Logger(w io.Writer, format string) (zerolog.Logger, error) {
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format: %q is not json or console", format)
	}
	return zerolog.New(w).With().Timestamp().Logger(), nil
}

// ConfigFromEnv reads the agent's settings: VP_S3_ENDPOINT (host:port),
// VP_S3_ACCESS_KEY / VP_S3_SECRET_KEY (or AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY), VP_S3_SECURE, K_SINK, VP_PYTHON, VP_GRACE.
func ConfigFromEnv(workDir string, log zerolog.Logger) (Config, error) {
	endpoint := os.Getenv("VP_S3_ENDPOINT")
	if endpoint == "" {
		return Config{}, fmt.Errorf("VP_S3_ENDPOINT is not set")
	}
	access := firstEnv("VP_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
	secret := firstEnv("VP_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")
	secure, _ := strconv.ParseBool(os.Getenv("VP_S3_SECURE"))
	store, err := minio.New(strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://"), &minio.Options{
		Creds: credentials.NewStaticV4(access, secret, ""), Secure: secure,
	})
	if err != nil {
		return Config{}, fmt.Errorf("VP_S3_ENDPOINT %q: %w", endpoint, err)
	}
	c := Config{Store: store, Sink: &Sink{URL: os.Getenv("K_SINK"), Out: os.Stdout}, WorkDir: workDir, Python: os.Getenv("VP_PYTHON"), Log: log}
	if g := os.Getenv("VP_GRACE"); g != "" {
		if c.Grace, err = time.ParseDuration(g); err != nil {
			return Config{}, fmt.Errorf("VP_GRACE: %w", err)
		}
	}
	return c, nil
}

func firstEnv(keys ...string) string {
	for _, k := range keys {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}
