package ociregistry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the filesystem storage driver
	"github.com/sirupsen/logrus"
)

// Registry is the registry's HTTP handler (the /v2/ API). Serve runs it
// with the connection limits it needs; as a plain http.Handler it still
// applies the progress timeout to request bodies and its checks.
type Registry struct {
	app   http.Handler
	stat  distribution.BlobStatter
	log   *logrus.Entry
	o     options
	dir   string
	state func(net.Conn, http.ConnState) // tests watch connections with it
}

var _ http.Handler = (*Registry)(nil)

// New returns the registry storing everything under dir. The upload secret
// is kept in dir too, so uploads in progress survive a restart. Until ctx
// ends, abandoned uploads are purged in the background (see
// WithUploadPurgeAge).
func New(ctx context.Context, dir string, opts ...Option) (*Registry, error) {
	o := defaults()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the registry directory: %w", err)
	}
	secret, err := loadSecret(filepath.Join(dir, "http-secret"))
	if err != nil {
		return nil, fmt.Errorf("loading the upload secret: %w", err)
	}
	l := o.log
	if l == nil {
		l = logrus.New()
		l.SetOutput(io.Discard)
		l.SetLevel(logrus.PanicLevel) // nothing is even formatted
	}
	r := &Registry{o: o, dir: dir, log: logrus.NewEntry(l)}
	ctx = r.withLogger(ctx)
	params := configuration.Parameters{"rootdirectory": r.storageRoot()}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": params,
			"delete":     configuration.Parameters{"enabled": true},
			// distribution's own purger waits a random 0-59 min before its
			// first run and logs through the process-wide logrus logger;
			// purgeLoop does the work instead.
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	cfg.HTTP.Secret = secret
	cfg.Log.AccessLog.Disabled = true
	app, err := newApp(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r.app = app
	driver, err := factory.Create(ctx, "filesystem", params)
	if err != nil {
		return nil, fmt.Errorf("opening the storage driver: %w", err)
	}
	ns, err := storage.NewRegistry(ctx, driver)
	if err != nil {
		return nil, fmt.Errorf("opening the blob store: %w", err)
	}
	r.stat = ns.BlobStatter()
	go r.purgeLoop(ctx)
	return r, nil
}

// newApp builds distribution's application, which panics on a bad
// configuration.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("starting the registry: %v", p)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// storageRoot is the filesystem driver's root directory.
func (r *Registry) storageRoot() string { return filepath.Join(r.dir, "storage") }

// ServeHTTP answers the registry API.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	req = req.WithContext(r.withLogger(req.Context()))
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		b := &progressBody{ReadCloser: req.Body, rc: http.NewResponseController(w), timeout: r.o.progressTimeout}
		req.Body = b
		defer b.finish()
	}
	if !r.check(w, req) {
		return
	}
	r.app.ServeHTTP(w, req)
}

// logCtx answers distribution's lookup of its logger with the registry's
// own. distribution keeps its context helpers (dcontext.WithLogger) in an
// internal package, so its key cannot be named from here; it is told by its
// type. Every other lookup goes to the parent.
type logCtx struct {
	context.Context
	entry *logrus.Entry
}

func (c logCtx) Value(key any) any {
	if isLoggerKey(key) {
		return c.entry
	}
	return c.Context.Value(key)
}

const dcontextPkg = "github.com/distribution/distribution/v3/internal/dcontext"

func isLoggerKey(key any) bool {
	t := reflect.TypeOf(key)
	return t != nil && t.Name() == "loggerKey" && t.PkgPath() == dcontextPkg
}

func (r *Registry) withLogger(ctx context.Context) context.Context {
	return logCtx{Context: ctx, entry: r.log}
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
