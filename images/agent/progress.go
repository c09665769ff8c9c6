package agent

import (
	"context"
	"sync"
	"time"

	"github.com/vision-platform/vp/events"
)

// clock is the time the progress rate limit reads; tests give a fake one.
type clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless
	// stop is called first.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// progress acts on the adapter's protocol lines (ParseLine, described in
// images/python/PROTOCOL.md):
//
//   - metric lines become run.progress events, at most one per interval: a
//     line that comes sooner waits, and a newer one replaces it; the last one
//     is always sent; events reach the sink in the order of their lines;
//   - the final line's metrics, or before one comes the latest metric
//     line's, are the run's final metrics (r.lastProg, which run.finished
//     takes when the output has no metrics.json);
//   - a resume line goes to the run log and the agent's log;
//   - unknown kinds and malformed lines are logged and skipped.
type progress struct {
	r     *run
	every time.Duration
	clock clock

	mu       sync.Mutex
	pending  *events.RunProgressData
	lastSent time.Time
	stop     func() bool   // the timer that sends pending, if any
	final    bool          // a final line came: metric lines no longer set r.lastProg
	sending  chan struct{} // closed when the latest send is over
	wg       sync.WaitGroup
}

func newProgress(r *run, every time.Duration) *progress {
	return &progress{r: r, every: every, clock: realClock{}}
}

// line acts on one line of the adapter's standard output.
func (p *progress) line(s string) {
	l, err := ParseLine(s)
	if err != nil {
		p.r.log.Warn().Err(err).Msg("ignoring a malformed protocol line")
		return
	}
	switch l := l.(type) {
	case nil: // the framework's own output
	case MetricLine:
		p.metric(l)
	case FinalLine:
		p.mu.Lock()
		p.final = true
		p.setFinal(l.Metrics)
		p.mu.Unlock()
	case ResumeLine:
		p.r.logf("vp-agent: the adapter resumed from its checkpoint after epoch %d (step %d)", l.Epoch, l.Step)
		p.r.log.Info().Int("epoch", l.Epoch).Int64("step", l.Step).Msg("the adapter resumed from its checkpoint")
	case UnknownLine:
		p.r.log.Warn().Str("kind", l.Kind).Msg("ignoring a protocol line of an unknown kind")
	}
}

// setFinal makes m the run's final metrics so far.
func (p *progress) setFinal(m map[string]float64) {
	p.r.mu.Lock()
	p.r.lastProg = m
	p.r.mu.Unlock()
}

func (p *progress) metric(l MetricLine) {
	now := p.clock.Now()
	d := &events.RunProgressData{Job: p.r.req.Job.ID, RunID: p.r.req.RunID, Epoch: l.Epoch, Step: l.Step,
		Metrics: l.Metrics, Time: now.UTC()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.final {
		p.setFinal(l.Metrics)
	}
	p.pending = d
	if wait := p.every - now.Sub(p.lastSent); wait > 0 {
		if p.stop == nil {
			p.stop = p.clock.AfterFunc(wait, p.fire)
		}
		return
	}
	p.sendLocked()
}

func (p *progress) fire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stop = nil
	p.sendLocked()
}

func (p *progress) sendLocked() {
	d := p.pending
	if d == nil {
		return
	}
	p.pending = nil
	p.lastSent = p.clock.Now()
	// Sends go out one after the other, in order: each waits for the one
	// before it (a slow sink must not let a later step overtake).
	prev, done := p.sending, make(chan struct{})
	p.sending = done
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		e, err := events.Next(p.r.in, p.r.c.Source, *d)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = p.r.c.Sink.Send(ctx, e)
			cancel()
		}
		if err != nil {
			p.r.log.Warn().Err(err).Msg("sending run.progress")
		}
	}()
}

// flush sends what is pending and waits for every send.
func (p *progress) flush() {
	p.mu.Lock()
	if p.stop != nil {
		p.stop()
		p.stop = nil
	}
	p.sendLocked()
	p.mu.Unlock()
	p.wg.Wait()
}
