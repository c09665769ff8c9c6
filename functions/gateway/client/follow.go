package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/functions/gateway/api"
)

// Event is one event of a job's stream.
type Event struct {
	// ID resumes the stream after this event.
	ID string
	// Type is the event's short type (run.progress, ...).
	Type string
	// CloudEvent is the platform's event itself.
	CloudEvent event.Event
}

// errEnded is a stream that told its job is over.
var errEnded = errors.New("ended")

// Follow calls fn with each event of a job's stream, from its first event
// (or after lastID), until the gateway says the job is over, ctx ends, or
// fn returns an error (returned). A stream that drops is followed again
// from the last event seen, as EventSource does.
func (c *Client) Follow(ctx context.Context, id, lastID string, fn func(Event) error) error {
	for {
		err := c.followOnce(ctx, id, &lastID, fn)
		switch {
		case errors.Is(err, errEnded):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			var fe fnError
			if errors.As(err, &fe) {
				return fe.err
			}
			var ge *Error
			if errors.As(err, &ge) && ge.Status != http.StatusTooManyRequests && ge.Status/100 != 5 {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.retry):
		}
	}
}

// fnError carries the callback's own error out of a stream.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func (c *Client) followOnce(ctx context.Context, id string, lastID *string, fn func(Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(api.Prefix+"/jobs/"+url.PathEscape(id)+"/events", nil), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return fmt.Errorf("following %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decode(resp, nil)
	}
	return readSSE(resp.Body, func(id, typ, data string) error {
		if typ == "end" {
			return errEnded
		}
		var e event.Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return fmt.Errorf("decoding the stream's %s event: %w", typ, err)
		}
		if err := fn(Event{ID: id, Type: typ, CloudEvent: e}); err != nil {
			return fnError{err}
		}
		if id != "" {
			*lastID = id
		}
		return nil
	})
}

// readSSE reads Server-Sent Events from r, calling fn with each event's
// id, name and data.
func readSSE(r io.Reader, fn func(id, typ, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var id, typ string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(data) > 0 || typ != "" {
				if typ == "" {
					typ = "message"
				}
				if err := fn(id, typ, strings.Join(data, "\n")); err != nil {
					return err
				}
			}
			typ, data = "", nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			typ = value
		case "data":
			data = append(data, value)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the stream: %w", err)
	}
	return io.ErrUnexpectedEOF
}
