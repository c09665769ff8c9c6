package agent

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/internal/objstore"
)

// Logger is zerolog to w, in format "json" or "console"; another format is
// a *FieldError for LogFormat.
func Logger(w io.Writer, format string) (zerolog.Logger, error) {
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Nop(), &FieldError{Field: "LogFormat", Value: format, Reason: "not json or console"}
	}
	return zerolog.New(w).With().Timestamp().Logger(), nil
}

// ConfigFromEnv reads the agent's settings: the object store as
// objstore.FromEnv reads it (VP_S3_ENDPOINT, VP_S3_ACCESS_KEY /
// VP_S3_SECRET_KEY or AWS_*, VP_S3_SECURE), K_SINK (none: events go to
// standard output as JSON lines), VP_PYTHON, VP_GRACE, VP_WEIGHTS_BUCKET
// (the imported pretrained weights; default weights).
func ConfigFromEnv(workDir string, log zerolog.Logger) (Config, error) {
	store, err := objstore.FromEnv()
	if err != nil {
		return Config{}, fmt.Errorf("configuring the object store: %w", err)
	}
	c := Config{Store: store, Sink: &Sink{URL: os.Getenv("K_SINK"), Out: os.Stdout}, WorkDir: workDir, Python: os.Getenv("VP_PYTHON"), Log: log,
		WeightsBucket: os.Getenv("VP_WEIGHTS_BUCKET")}
	if g := os.Getenv("VP_GRACE"); g != "" {
		if c.Grace, err = time.ParseDuration(g); err != nil {
			return Config{}, fmt.Errorf("VP_GRACE: %w", err)
		}
	}
	return c, nil
}
