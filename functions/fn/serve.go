package fn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	fce "knative.dev/func-go/cloudevents"
	fhttp "knative.dev/func-go/http"
)

// Function is what a platform function implements beyond its Handle
// method: func-go's Starter and Stopper hooks.
type Function interface {
	Start(ctx context.Context, cfg map[string]string) error
	Stop(ctx context.Context) error
}

// EventHandler is a CloudEvents function: it answers an event with the
// next one (or nil) as the reply the broker routes on.
type EventHandler interface {
	Handle(ctx context.Context, e event.Event) (*event.Event, error)
}

// Handler is the HTTP handler func-go serves f with: f's CloudEvents (a
// Handle(ctx, event.Event) method) or plain HTTP (a Handle(w, r) method)
// on /, and /health/readiness and /health/liveness.
func Handler(f any) (http.Handler, error) {
	if h, ok := f.(fhttp.Handler); ok {
		return fhttp.New(h).Handler, nil
	}
	if _, ok := f.(EventHandler); !ok {
		return nil, fmt.Errorf("%T has neither Handle(ctx, event.Event) (*event.Event, error) nor Handle(w, r)", f)
	}
	return fce.New(f).Handler, nil
}

// Serve starts f with cfg and serves it on ln, with func-go's server
// timeouts (30 s to read and write: handlers answer fast and report long
// work by event), until ctx ends; then it stops taking requests, lets
// those in flight finish (up to 30 s) and stops f. extra serves other
// paths beside the function's (/metrics, say).
func Serve(ctx context.Context, ln net.Listener, f Function, cfg map[string]string, extra map[string]http.Handler) error {
	h, err := Handler(f)
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		mux := http.NewServeMux()
		for p, eh := range extra {
			mux.Handle(p, eh)
		}
		mux.Handle("/", h)
		h = mux
	}
	if err := f.Start(ctx, cfg); err != nil {
		return err
	}
	srv := &http.Server{
		Handler: h, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: 30 * time.Second, ReadHeaderTimeout: 2 * time.Second, MaxHeaderBytes: 1 << 20,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(err, f.Stop(sctx))
}
