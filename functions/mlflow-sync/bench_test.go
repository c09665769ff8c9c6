package mlflowsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	mlflowsync "github.com/vision-platform/vp/functions/mlflow-sync"
	"github.com/vision-platform/vp/internal/testsupport"
)

// benchEvents is the number of run.progress events each way syncs per
// iteration, and benchMetrics the metrics each carries (the function adds
// epoch).
const (
	benchEvents  = 100
	benchMetrics = 8
)

// BenchmarkSync measures run.progress events synced per second to a real
// MLflow tracking server (SQLite), with one runs/log-batch request per
// event and with one runs/log-metric request per metric, taking turns in
// the same run, and reports both and their ratio.
func BenchmarkSync(b *testing.B) {
	ml := testsupport.StartMLflow(b, testsupport.MLflowConfig{ArtifactRoot: "s3://runs/"})
	cfg := map[string]string{mlflowsync.EnvTrackingURI: ml.URL}
	start := func(opts ...mlflowsync.Option) *mlflowsync.Function {
		f := mlflowsync.New(append([]mlflowsync.Option{mlflowsync.WithLogger(zerolog.Nop())}, opts...)...)
		if err := f.Start(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
		return f
	}
	batch, single := start(), start(mlflowsync.WithOneRequestPerMetric())
	ctx := context.Background()
	// sync runs a fresh run through f: run.started untimed, then its
	// progress events timed.
	sync := func(f *mlflowsync.Function, seed int64) time.Duration {
		r := newRun(b, seed, 1, events.StatusSucceeded)
		if _, err := f.Handle(ctx, r.started); err != nil {
			b.Fatal(err)
		}
		evs := make([]event.Event, benchEvents)
		for i := range evs {
			m := map[string]float64{}
			for k := 0; k < benchMetrics; k++ {
				m[fmt.Sprint("metric", k)] = float64(i*k) / 7
			}
			e, err := events.New(ctx, "/agent", events.RunProgressData{Job: r.job.ID, RunID: r.runID, Epoch: i + 1, Step: int64(i + 1),
				Metrics: m, Time: base.Add(time.Duration(i) * time.Second)})
			if err != nil {
				b.Fatal(err)
			}
			evs[i] = e
		}
		t0 := time.Now()
		for _, e := range evs {
			if _, err := f.Handle(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	var tb, ts time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seed := int64(1000 + 2*i)
		if i%2 == 0 {
			tb += sync(batch, seed)
			ts += sync(single, seed+1)
		} else {
			ts += sync(single, seed+1)
			tb += sync(batch, seed)
		}
	}
	n := float64(b.N * benchEvents)
	batchRate, singleRate := n/tb.Seconds(), n/ts.Seconds()
	b.ReportMetric(batchRate, "log-batch-events/s")
	b.ReportMetric(singleRate, "log-metric-events/s")
	b.ReportMetric(batchRate/singleRate, "ratio")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d run.progress events of %d metrics (+ epoch) each way: log-batch %.0f events/s (%.0f metrics/s), one log-metric per metric %.0f events/s (%.0f metrics/s): %.1fx",
		int(n), benchMetrics, batchRate, batchRate*(benchMetrics+1), singleRate, singleRate*(benchMetrics+1), batchRate/singleRate)
}
