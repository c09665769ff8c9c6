package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/internal/objstore"
)

// TestLoggerFieldError: a bad format is a field error, in no flag's words.
func TestLoggerFieldError(t *testing.T) {
	_, err := Logger(nil, "xml")
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "LogFormat" || fe.Value != "xml" || strings.Contains(err.Error(), "--") {
		t.Errorf("Logger(xml) = %v, want a *FieldError for LogFormat naming no flag", err)
	}
	for _, f := range []string{"json", "console"} {
		if _, err := Logger(nil, f); err != nil {
			t.Errorf("Logger(%s) = %v", f, err)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("VP_S3_ENDPOINT", "")
	if _, err := ConfigFromEnv(t.TempDir(), zerolog.Nop()); !errors.Is(err, objstore.ErrNoEndpoint) {
		t.Errorf("ConfigFromEnv() with no endpoint = %v, want objstore.ErrNoEndpoint", err)
	}
	t.Setenv("VP_S3_ENDPOINT", "127.0.0.1:9000")
	t.Setenv("K_SINK", "http://127.0.0.1:8080/default/default")
	t.Setenv("VP_GRACE", "3s")
	t.Setenv("VP_WEIGHTS_BUCKET", "pretrained")
	c, err := ConfigFromEnv(t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if c.Store == nil || c.Sink.URL != "http://127.0.0.1:8080/default/default" || c.Grace.String() != "3s" || c.WeightsBucket != "pretrained" {
		t.Errorf("ConfigFromEnv() = store %v, sink %q, grace %s, weights bucket %q", c.Store, c.Sink.URL, c.Grace, c.WeightsBucket)
	}
	t.Setenv("VP_GRACE", "soon")
	if _, err := ConfigFromEnv(t.TempDir(), zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "VP_GRACE") {
		t.Errorf("ConfigFromEnv() with VP_GRACE=soon = %v", err)
	}
}
