package agent

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/vision-platform/vp/events"
)

// progress turns the SDK's metric lines into run.progress events, at most
// one per interval: a line that comes sooner waits, and a newer one
// replaces it; the last one is always sent.
type progress struct {
	r        *run
	every    time.Duration
	mu       sync.Mutex
	pending  *events.RunProgressData
	lastSent time.Time
	timer    *time.Timer
	wg       sync.WaitGroup
}

func newProgress(r *run, every time.Duration) *progress { return &progress{r: r, every: every} }

func (p *progress) line(s string) {
	var m map[string]any
	if len(s) == 0 || s[0] != '{' || json.Unmarshal([]byte(s), &m) != nil || m["vp"] != "metric" {
		return
	}
	d := &events.RunProgressData{Job: p.r.req.Job.ID, RunID: p.r.req.RunID, Time: time.Now().UTC(), Metrics: map[string]float64{}}
	for k, v := range m {
		f, ok := v.(float64)
		if !ok {
			continue
		}
		switch k {
		case "epoch":
			d.Epoch = int(f)
		case "step":
			d.Step = int64(f)
		case "time":
		default:
			d.Metrics[k] = f
		}
	}
	p.r.mu.Lock()
	p.r.lastProg = d.Metrics
	p.r.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = d
	if wait := p.every - time.Since(p.lastSent); wait > 0 {
		if p.timer == nil {
			p.timer = time.AfterFunc(wait, p.fire)
		}
		return
	}
	p.sendLocked()
}

func (p *progress) fire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = nil
	p.sendLocked()
}

func (p *progress) sendLocked() {
	d := p.pending
	if d == nil {
		return
	}
	p.pending = nil
	p.lastSent = time.Now()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
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
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.sendLocked()
	p.mu.Unlock()
	p.wg.Wait()
}
