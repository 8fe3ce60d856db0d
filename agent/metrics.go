package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the agent's Prometheus series, on a registry of their own so
// nothing else leaks into the endpoint.
type metrics struct {
	registry *prometheus.Registry

	started *prometheus.CounterVec
	active  *prometheus.GaugeVec
	ended   *prometheus.CounterVec
	latency prometheus.Histogram
	bytes   *prometheus.CounterVec
	denials *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodedebug_sessions_started_total",
			Help: "Sessions whose tool process started, by profile.",
		}, []string{"profile"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nodedebug_sessions_active",
			Help: "Sessions running now, by profile.",
		}, []string{"profile"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodedebug_sessions_ended_total",
			Help: "Sessions that ended, by profile and outcome.",
		}, []string{"profile", "outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nodedebug_attach_latency_seconds",
			Help:    "Time from an attach request to its tool process starting.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
		}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodedebug_streamed_bytes_total",
			Help: "Bytes streamed between clients and tool processes; in is stdin.",
		}, []string{"direction"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodedebug_denials_total",
			Help: "Sessions refused, by the policy rule that refused them.",
		}, []string{"reason"}),
	}
	m.registry.MustRegister(m.started, m.active, m.ended, m.latency, m.bytes, m.denials)
	return m
}

// MetricsAddress completes a --metrics-listen value: a bare ":PORT" listens
// on loopback only.
func MetricsAddress(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("metrics address %q: want HOST:PORT or :PORT: %w", listen, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// ServeMetrics serves /metrics on addr until ctx ends.
func (a *Agent) ServeMetrics(ctx context.Context, addr string) error {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{}))
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()

	a.log.InfoContext(ctx, "serving metrics", "address", listener.Addr().String())
	go func() {
		if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("serve metrics", "address", addr, "error", err)
		}
	}()
	return nil
}

// sessionStarted counts a session whose tool process runs.
func (m *metrics) sessionStarted(profile string, requested time.Time) {
	m.started.WithLabelValues(profile).Inc()
	m.active.WithLabelValues(profile).Inc()
	m.latency.Observe(time.Since(requested).Seconds())
}

// sessionEnded counts how a session ended, and the denial's rule if the
// policy refused it.
func (m *metrics) sessionEnded(s *session, outcome, rule string) {
	profile := s.profileName()
	if s.running {
		m.active.WithLabelValues(profile).Dec()
	}
	if rule != "" {
		m.denials.WithLabelValues(rule).Inc()
	}
	m.ended.WithLabelValues(profile, outcome).Inc()
	m.bytes.WithLabelValues("in").Add(float64(s.bytesIn.Load()))
	m.bytes.WithLabelValues("out").Add(float64(s.bytesOut.Load()))
}
