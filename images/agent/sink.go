package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

func jsonEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc
}

// Sink delivers the agent's events: to K_SINK over HTTP (binary mode,
// retried), or as JSON lines to a writer when there is no sink.
type Sink struct {
	URL    string
	Out    io.Writer
	Client *http.Client
}

// Send delivers e, retrying 5xx, 429 and connection errors for up to about
// 30 s; a 4xx other than 429 is final.
func (s *Sink) Send(ctx context.Context, e event.Event) error {
	if s.URL == "" {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(s.Out, "%s\n", b)
		return err
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	var last error
	delay := 200 * time.Millisecond
	for i := 0; i < 8; i++ {
		req, err := cehttp.NewHTTPRequestFromEvent(ctx, s.URL, e)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			last = fmt.Errorf("sink %s answered %s", s.URL, resp.Status)
			if resp.StatusCode/100 == 4 && resp.StatusCode != 429 && resp.StatusCode != 404 && resp.StatusCode != 408 {
				return last
			}
		} else {
			last = err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		if delay < 5*time.Second {
			delay *= 2
		}
	}
	return fmt.Errorf("sending %s to %s: %w", e.Type(), s.URL, last)
}
