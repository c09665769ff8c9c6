package gateway

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	streams    prometheus.Gauge
	emitted    *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	dropped    prometheus.Counter
}

func newMetrics() metrics {
	return metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_gateway_requests_total", Help: "Requests the gateway answered, by route and status.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vp_gateway_request_seconds", Help: "Time to answer a request (an event stream: its whole life), by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60, 600},
		}, []string{"route"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vp_gateway_streams", Help: "Event streams (Server-Sent Events) open now.",
		}),
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_gateway_events_emitted_total", Help: "Events the gateway posted to the broker, by type.",
		}, []string{"type"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_gateway_deliveries_total", Help: "Events the broker delivered to the gateway, by outcome.",
		}, []string{"outcome"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vp_gateway_stream_overflows_total", Help: "Streams ended because their client read too slowly (it resumes with Last-Event-ID).",
		}),
	}
}

func (m metrics) register(r prometheus.Registerer) {
	r.MustRegister(m.requests, m.latency, m.streams, m.emitted, m.deliveries, m.dropped)
}
