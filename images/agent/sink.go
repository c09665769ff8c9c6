package agent

import (
	"context"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events/sender"
)

// Sink delivers the agent's events: to URL (K_SINK) with the platform's
// sender (package events/sender: binary mode, its one retry policy), or,
// when URL is empty, as JSON lines to Out (default standard output).
type Sink struct {
	URL    string
	Out    io.Writer
	Client *http.Client    // the HTTP client (default: the sender's)
	Opts   []sender.Option // more sender options (a retry policy, ...)

	once sync.Once
	s    sender.Interface
	err  error
}

// Send delivers e; a failed delivery to URL is a *sender.Error.
func (s *Sink) Send(ctx context.Context, e event.Event) error {
	s.once.Do(func() {
		if s.URL == "" {
			out := s.Out
			if out == nil {
				out = os.Stdout
			}
			s.s = sender.NewLines(out)
			return
		}
		opts := s.Opts
		if s.Client != nil {
			opts = append([]sender.Option{sender.WithClient(s.Client)}, opts...)
		}
		s.s, s.err = sender.New(s.URL, opts...)
	})
	if s.err != nil {
		return s.err
	}
	return s.s.Send(ctx, e)
}
