// Package ociregistry is the platform's embedded OCI registry: the CNCF
// distribution library with its filesystem driver, so blobs, manifests
// and tags live on disk and survive restarts.
package ociregistry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the filesystem storage driver
	"github.com/sirupsen/logrus"
)

// New returns the registry's HTTP handler (the /v2/ API) storing
// everything under dir. The upload secret is kept in dir too, so uploads
// in progress survive a restart.
func New(ctx context.Context, dir string) (http.Handler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	secret, err := loadSecret(filepath.Join(dir, "http-secret"))
	if err != nil {
		return nil, err
	}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem":  configuration.Parameters{"rootdirectory": filepath.Join(dir, "storage")},
			"delete":      configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	cfg.HTTP.Secret = secret
	cfg.Log.AccessLog.Disabled = true
	// distribution logs through logrus' standard logger, and logs every
	// 404 (a blob probe before a push) as an error; keep it quiet. Failed
	// requests still answer their client.
	logrus.SetLevel(logrus.FatalLevel)
	var h http.Handler
	var perr error
	func() {
		defer func() {
			if r := recover(); r != nil {
				perr = fmt.Errorf("starting the registry: %v", r)
			}
		}()
		h = handlers.NewApp(ctx, cfg)
	}()
	if perr != nil {
		return nil, perr
	}
	return h, nil
}

func loadSecret(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err == nil && len(b) > 0 {
		return string(b), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	s := hex.EncodeToString(buf)
	return s, os.WriteFile(p, []byte(s), 0o600)
}
