package up

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/local/broker"
	"github.com/vision-platform/vp/local/ociregistry"
)

// Config is what `vp up` runs.
type Config struct {
	// DataDir holds everything the platform stores locally; default
	// $XDG_DATA_HOME/vision-platform (~/.local/share/vision-platform).
	DataDir string
	// BrokerAddr is where the broker listens (default 127.0.0.1:8080).
	BrokerAddr string
	// DisplayAddr is where the event display listens (default 127.0.0.1:8089).
	DisplayAddr string
	// RegistryAddr is where the embedded OCI registry listens (default
	// 127.0.0.1:5000).
	RegistryAddr string
	// TriggersFile adds triggers to the platform's own.
	TriggersFile string
}

// DefaultDataDir is where `vp up` keeps its state unless told otherwise.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "vision-platform")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".vision-platform"
	}
	return filepath.Join(home, ".local", "share", "vision-platform")
}

// Run starts the local platform and blocks until ctx ends. Today that is
// the broker, the embedded OCI registry, and an event display subscribed to
// every event (Knative's event-display, for watching the flow); the
// functions join as they land.
func Run(ctx context.Context, c Config, log zerolog.Logger) error {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.BrokerAddr == "" {
		c.BrokerAddr = "127.0.0.1:8080"
	}
	if c.DisplayAddr == "" {
		c.DisplayAddr = "127.0.0.1:8089"
	}
	if c.RegistryAddr == "" {
		c.RegistryAddr = "127.0.0.1:5000"
	}
	regLn, err := net.Listen("tcp", c.RegistryAddr)
	if err != nil {
		return fmt.Errorf("registry: listening on %s: %w", c.RegistryAddr, err)
	}
	reg, err := ociregistry.New(ctx, filepath.Join(c.DataDir, "registry"))
	if err != nil {
		return err
	}
	displayLn, err := net.Listen("tcp", c.DisplayAddr)
	if err != nil {
		return fmt.Errorf("event display: listening on %s: %w", c.DisplayAddr, err)
	}
	trs, err := broker.ParseTriggers("vp up (built in)", []byte(fmt.Sprintf(`
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: event-display
spec:
  broker: default
  subscriber:
    uri: http://%s/
  delivery:
    retry: 3
    backoffDelay: PT0.2S
`, displayLn.Addr())))
	if err != nil {
		return err
	}
	bc := BrokerConfig{
		DataDir:            filepath.Join(c.DataDir, "broker"),
		TriggersFile:       c.TriggersFile,
		Triggers:           trs,
		Addr:               c.BrokerAddr,
		ValidateVocabulary: true,
	}
	log.Info().Str("data", c.DataDir).Msg("starting the local platform")
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return RunBroker(ctx, bc, log.With().Str("component", "broker").Logger()) })
	g.Go(func() error {
		rlog := log.With().Str("component", "registry").Logger()
		rlog.Info().Str("addr", regLn.Addr().String()).Msg("OCI registry listening")
		return reg.Serve(ctx, regLn)
	})
	g.Go(func() error {
		dlog := log.With().Str("component", "event-display").Logger()
		dlog.Info().Str("addr", "http://"+displayLn.Addr().String()).Msg("event display listening")
		return serve(ctx, displayLn, EventDisplay(dlog), dlog)
	})
	return g.Wait()
}

// displayKeep is how many of the latest events the display answers GET with.
const displayKeep = 200

// EventDisplay logs every CloudEvent it receives, one line each, as
// Knative's event-display does, and answers GET with the latest ones
// (up to 200, oldest first) as a JSON array of structured-mode events.
func EventDisplay(log zerolog.Logger) http.Handler {
	var mu sync.Mutex
	var recent []event.Event
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			mu.Lock()
			out := append([]event.Event{}, recent...)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(out)
			return
		case http.MethodPost:
		default:
			w.Header().Set("Allow", "GET, POST")
			broker.WriteError(w, http.StatusMethodNotAllowed, "method not allowed",
				events.FieldError{Field: "method", Reason: "use POST to send an event, GET to list the latest"})
			return
		}
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			broker.WriteError(w, http.StatusBadRequest, "not a CloudEvent", events.FieldError{Field: "body", Reason: err.Error()})
			return
		}
		l := log.Info().Str("id", e.ID()).Str("type", e.Type()).Str("source", e.Source())
		if s := e.Subject(); s != "" {
			l = l.Str("subject", s)
		}
		for k, v := range e.Extensions() {
			if k == "jobid" || k == "traceparent" || strings.HasPrefix(k, "knativeerror") {
				l = l.Interface(k, v)
			}
		}
		l.RawJSON("data", jsonOrString(e.Data())).Msg("event")
		mu.Lock()
		if len(recent) == displayKeep {
			recent = append(recent[:0], recent[1:]...)
		}
		recent = append(recent, *e)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
}

func jsonOrString(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	for _, c := range b {
		if c == ' ' || c == '\n' || c == '\t' || c == '\r' {
			continue
		}
		if c == '{' || c == '[' || c == '"' {
			return b
		}
		break
	}
	q := fmt.Sprintf("%q", b)
	return []byte(q)
}
