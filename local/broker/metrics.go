package broker

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	reg          *prometheus.Registry
	received     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	duplicates   *prometheus.CounterVec
	delivered    *prometheus.CounterVec
	retried      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	replies      *prometheus.CounterVec
	latency      *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_broker_events_received_total", Help: "Events accepted and stored by the ingress.",
		}, []string{"broker"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_broker_events_rejected_total", Help: "Ingress requests refused, by broker (\"unknown\" for a path that names none) and HTTP status.",
		}, []string{"broker", "code"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_broker_events_duplicate_total", Help: "Events dropped as duplicates of a source+id seen within the window.",
		}, []string{"broker"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_broker_events_delivered_total", Help: "Events a subscriber accepted.",
		}, []string{"trigger"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_broker_events_retried_total", Help: "Deliveries that failed and were scheduled again.",
		}, []string{"trigger"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_broker_events_dead_lettered_total", Help: "Events sent to a trigger's dead-letter sink.",
		}, []string{"trigger"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_broker_events_dropped_total", Help: "Events given up on, by reason.",
		}, []string{"trigger", "reason"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vp_broker_replies_total", Help: "Subscriber replies, by outcome (ingested, ttl_exhausted, not_an_event, too_large).",
		}, []string{"trigger", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vp_broker_delivery_latency_seconds",
			Help:    "From storage at the ingress to the subscriber's successful answer.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"trigger"}),
	}
	m.reg.MustRegister(m.received, m.rejected, m.duplicates, m.delivered, m.retried, m.deadLettered, m.dropped, m.replies, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// triggerMetrics are one trigger's series, resolved once.
type triggerMetrics struct {
	delivered, retried, deadLettered   prometheus.Counter
	droppedNoDLS, droppedDLSFailed     prometheus.Counter
	ingested, ttlExhausted, notAnEvent prometheus.Counter
	tooLarge                           prometheus.Counter
	latency                            prometheus.Observer
}

func (m *metrics) forTrigger(key string) triggerMetrics {
	return triggerMetrics{
		delivered:        m.delivered.WithLabelValues(key),
		retried:          m.retried.WithLabelValues(key),
		deadLettered:     m.deadLettered.WithLabelValues(key),
		droppedNoDLS:     m.dropped.WithLabelValues(key, "no_dead_letter_sink"),
		droppedDLSFailed: m.dropped.WithLabelValues(key, "dead_letter_failed"),
		ingested:         m.replies.WithLabelValues(key, "ingested"),
		ttlExhausted:     m.replies.WithLabelValues(key, "ttl_exhausted"),
		notAnEvent:       m.replies.WithLabelValues(key, "not_an_event"),
		tooLarge:         m.replies.WithLabelValues(key, "too_large"),
		latency:          m.latency.WithLabelValues(key),
	}
}
