package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/internal/objstore"
)

// MaxLetterBytes bounds the size of one kept dead letter read back.
const MaxLetterBytes = 8 << 20

// Store is what reading kept dead letters takes.
type Store interface {
	objstore.Getter
	objstore.Lister
}

// Filter selects kept dead letters. The zero Filter selects every one.
type Filter struct {
	// Types are the event types to select (exact); none selects all.
	Types []string
	// Since and Until bound when the dead letter was kept (the object's
	// time in the store): Since <= kept < Until; zero is unbounded.
	Since, Until time.Time
}

func (f Filter) matchTime(t time.Time) bool {
	return (f.Since.IsZero() || !t.Before(f.Since)) && (f.Until.IsZero() || t.Before(f.Until))
}

func (f Filter) matchType(t string) bool {
	return len(f.Types) == 0 || slices.Contains(f.Types, t)
}

// prefixes are the key prefixes to list: every day from Since (a day
// earlier, for clocks that differ) to Until (a day later), or the whole
// bucket when Since is unset.
func (f Filter) prefixes(now time.Time) []string {
	if f.Since.IsZero() {
		return []string{""}
	}
	until := f.Until
	if until.IsZero() {
		until = now
	}
	first := f.Since.UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	last := until.UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	if last.Sub(first) > 366*24*time.Hour {
		return []string{""} // listing the bucket costs less than a request per day
	}
	var out []string
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format(DateLayout)+"/")
	}
	return out
}

// Letter is one kept dead letter.
type Letter struct {
	Key   string
	Kept  time.Time
	Event event.Event
}

// Dest is the subscriber that failed (knativeerrordest).
func (l Letter) Dest() string { return extString(l.Event, ExtErrorDest) }

// Code is its last status (knativeerrorcode).
func (l Letter) Code() string { return extString(l.Event, ExtErrorCode) }

// List yields the dead letters in bucket that f selects, in key order (by
// day, then id). It stops at the first error: a store that cannot be read,
// or an object that is not a CloudEvent (its key named).
func List(ctx context.Context, s Store, bucket string, f Filter) iter.Seq2[Letter, error] {
	return func(yield func(Letter, error) bool) {
		for _, p := range f.prefixes(time.Now()) {
			for info, err := range s.List(ctx, objstore.URI{Bucket: bucket, Key: p}) {
				if err != nil {
					yield(Letter{}, err)
					return
				}
				if !f.matchTime(info.LastModified) {
					continue
				}
				l, err := read(ctx, s, info)
				if err != nil {
					yield(Letter{}, err)
					return
				}
				if !f.matchType(l.Event.Type()) {
					continue
				}
				if !yield(l, nil) {
					return
				}
			}
		}
	}
}

func read(ctx context.Context, s objstore.Getter, info objstore.Info) (Letter, error) {
	rc, _, err := s.Get(ctx, info.URI, objstore.WithMaxSize(MaxLetterBytes))
	if err != nil {
		return Letter{}, fmt.Errorf("reading dead letter %s: %w", info.URI.Key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return Letter{}, fmt.Errorf("reading dead letter %s: %w", info.URI.Key, err)
	}
	var e event.Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Letter{}, fmt.Errorf("decoding dead letter %s: %w", info.URI.Key, err)
	}
	return Letter{Key: info.URI.Key, Kept: info.LastModified, Event: e}, nil
}

// Replayable is the event of a dead letter as it goes back to the broker:
// without the broker's error extensions and hop count, so the broker takes
// it as new and every trigger that matches gets it again.
func Replayable(l Letter) event.Event {
	e := l.Event.Clone()
	for _, k := range []string{ExtErrorDest, ExtErrorCode, ExtErrorData, ExtBrokerTTL} {
		e.SetExtension(k, nil)
	}
	return e
}

// Outcome is what Replay did with one dead letter.
type Outcome string

// Outcomes.
const (
	Sent      Outcome = "sent"
	WouldSend Outcome = "would send" // a dry run
	Duplicate Outcome = "duplicate"  // the same source and id went already
	Failed    Outcome = "failed"
)

// ReplayOptions say where and how Replay sends.
type ReplayOptions struct {
	// Sender posts to the broker's ingress; nil only for a dry run.
	Sender sender.Interface
	// DryRun sends nothing and reports what it would send.
	DryRun bool
	// Report, when set, hears of every letter selected.
	Report func(l Letter, o Outcome, err error)
}

// Summary counts what Replay did.
type Summary struct {
	Selected, Sent, Duplicates, Failed int
}

// ErrNoSender is Replay's error when it should send and has no sender.
var ErrNoSender = errors.New("no sender to the broker")

// Replay sends the dead letters f selects back to the broker, each source
// and id once (a dead letter is kept per subscriber that failed; the
// broker gives the event to every matching trigger again). A letter that
// cannot be sent is reported and counted, and the others still go; the
// error is the first failure, or one reading the store (which stops it).
func Replay(ctx context.Context, s Store, bucket string, f Filter, o ReplayOptions) (Summary, error) {
	var sum Summary
	if o.Sender == nil && !o.DryRun {
		return sum, ErrNoSender
	}
	report := o.Report
	if report == nil {
		report = func(Letter, Outcome, error) {}
	}
	seen := map[string]bool{}
	var first error
	for l, err := range List(ctx, s, bucket, f) {
		if err != nil {
			return sum, err
		}
		sum.Selected++
		k := l.Event.Source() + "\x00" + l.Event.ID()
		if seen[k] {
			sum.Duplicates++
			report(l, Duplicate, nil)
			continue
		}
		seen[k] = true
		if o.DryRun {
			report(l, WouldSend, nil)
			continue
		}
		if err := o.Sender.Send(ctx, Replayable(l)); err != nil {
			sum.Failed++
			err = fmt.Errorf("replaying %s (%s): %w", l.Key, l.Event.ID(), err)
			report(l, Failed, err)
			if first == nil {
				first = err
			}
			if ctx.Err() != nil {
				return sum, first
			}
			continue
		}
		sum.Sent++
		report(l, Sent, nil)
	}
	return sum, first
}

// ParseTypes splits comma-separated types, expanding the short name of a
// platform type ("run.finished") into the type.
func ParseTypes(list []string) []string {
	var out []string
	for _, item := range list {
		for _, t := range strings.Split(item, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if full := events.Type(events.Prefix + t); full.Known() {
				t = string(full)
			}
			out = append(out, t)
		}
	}
	return out
}
