package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensegate/sensegate/qlik"
)

// Route labels of sensegate_http_requests_total besides the route paths.
const (
	routeQlik      = "qlik"      // Qlik paths, websockets included
	routeSensegate = "sensegate" // sensegate's own endpoints (ReservedPrefix)
	routeNone      = "none"      // no route: 404
)

// Directions of sensegate_websocket_bytes_total.
const (
	dirClientToQlik = "client_to_qlik"
	dirQlikToClient = "qlik_to_client"
)

// upstreamBuckets are the buckets of sensegate_upstream_duration_seconds:
// Qlik answers static resources in milliseconds and QRS calls or
// synchronous task starts in seconds.
var upstreamBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics are the proxy's Prometheus metrics:
//
//	sensegate_http_requests_total{route,code}            requests answered, by route (qlik, a route's path, sensegate, none) and status code
//	sensegate_upstream_duration_seconds{upstream}        time to the upstream's response headers (qlik, or a route's path)
//	sensegate_reauth_total{kind="http"|"websocket"}      requests replayed and websockets re-dialled on a new Qlik session
//	sensegate_websockets_open                            relayed websockets
//	sensegate_websockets_refused_total{reason}           websocket upgrades refused (user_limit: over the user's bound)
//	sensegate_websocket_bytes_total{direction}           message bytes relayed (client_to_qlik, qlik_to_client)
//	sensegate_requests_refused_total{reason}             requests sensegate refused itself, by reason (the refuse* constants)
//	sensegate_websocket_closes_total{code,side}          relayed websockets ended, by close code (known codes, else other) and side that ended them
//	sensegate_qlik_session_notifications_total{topic}    Qlik notifications that ended a relayed socket's session, by topic
//
// The labels known at startup are bound when the Handler is made, so the
// request path does not look them up. A Metrics may serve several
// Handlers; a nil *Metrics records nothing.
type Metrics struct {
	requests   *prometheus.CounterVec
	upstream   *prometheus.HistogramVec
	reauthHTTP prometheus.Counter
	reauthWS   prometheus.Counter
	wsOpen     prometheus.Gauge
	wsUserCap  prometheus.Counter // refused: over the user's bound
	wsToQlik   prometheus.Counter
	wsToClient prometheus.Counter
	refused    map[string]prometheus.Counter // by reason; read-only after NewMetrics
	wsCloses   *prometheus.CounterVec
	notified   *prometheus.CounterVec
	// codes holds the label of every status code from 100 to 599, so
	// that labelling a request does not format (and allocate) one.
	codes [600]string
}

// NewMetrics creates the proxy's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensegate_http_requests_total",
			Help: "HTTP requests answered, by route (qlik, a route's path, sensegate for its own endpoints, none) and status code (101 for websockets, 499 when the client went away).",
		}, []string{"route", "code"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sensegate_upstream_duration_seconds",
			Help:    "Time from sending a request upstream to its response headers, by upstream (qlik, or a route's path).",
			Buckets: upstreamBuckets,
		}, []string{"upstream"}),
	}
	reauth := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_reauth_total",
		Help: "Sessions Qlik had forgotten, recovered with a new login: HTTP requests replayed and websockets re-dialled.",
	}, []string{"kind"})
	m.wsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sensegate_websockets_open",
		Help: "Engine websockets being relayed.",
	})
	wsBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_websocket_bytes_total",
		Help: "Websocket message payload bytes relayed, by direction.",
	}, []string{"direction"})
	wsRefused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_websockets_refused_total",
		Help: "Engine websocket upgrades refused before Qlik was dialled, by reason (user_limit: the user had qlik.websocket_per_user open).",
	}, []string{"reason"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_requests_refused_total",
		Help: "Requests sensegate refused itself, by reason: not_signed_in, identity (other identity refusals), origin (a websocket or cross-site request from a foreign origin), login_failed, rate_limited, websocket_limit, csrf (Qlik's 403 on a websocket handshake, passed on).",
	}, []string{"reason"})
	m.wsCloses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_websocket_closes_total",
		Help: "Relayed websockets ended, by close code (the RFC 6455 codes and Qlik's, else other; 1006 for a dropped connection) and the side that ended them (client, qlik, sensegate).",
	}, []string{"code", "side"})
	m.notified = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_qlik_session_notifications_total",
		Help: "Qlik notifications on relayed Engine websockets that ended the session, by topic.",
	}, []string{"topic"})
	for _, c := range []prometheus.Collector{m.requests, m.upstream, reauth, m.wsOpen, wsBytes, wsRefused, refused, m.wsCloses, m.notified} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.reauthHTTP = reauth.WithLabelValues("http")
	m.reauthWS = reauth.WithLabelValues("websocket")
	m.wsToQlik = wsBytes.WithLabelValues(dirClientToQlik)
	m.wsToClient = wsBytes.WithLabelValues(dirQlikToClient)
	m.wsUserCap = wsRefused.WithLabelValues("user_limit")
	m.refused = map[string]prometheus.Counter{}
	for _, r := range refuseReasons {
		m.refused[r] = refused.WithLabelValues(r)
	}
	for c := 100; c < len(m.codes); c++ {
		m.codes[c] = strconv.Itoa(c)
	}
	return m, nil
}

// routeMetrics are the metrics of one route (qlik, a route, sensegate or
// none), bound at startup. The zero value records nothing.
type routeMetrics struct {
	m        *Metrics
	requests *prometheus.CounterVec // curried with the route
	// ok is the counter of 200 answers of routes with an upstream, most
	// of their answers: bound once, it spares the label lookup.
	ok       prometheus.Counter
	upstream prometheus.Observer // nil for sensegate and none
}

// forRoute binds m's labels for route; upstream says whether the route
// has an upstream whose latency is measured.
func (m *Metrics) forRoute(route string, upstream bool) routeMetrics {
	if m == nil {
		return routeMetrics{}
	}
	rm := routeMetrics{m: m, requests: m.requests.MustCurryWith(prometheus.Labels{"route": route})}
	if upstream {
		rm.upstream = m.upstream.WithLabelValues(route)
		rm.ok = rm.requests.WithLabelValues(m.codes[http.StatusOK])
	}
	return rm
}

// request counts one answered request with status code.
func (rm *routeMetrics) request(code int) {
	switch {
	case rm.requests == nil:
		return
	case code == http.StatusOK && rm.ok != nil:
		rm.ok.Inc()
		return
	}
	var label string
	if code >= 100 && code < len(rm.m.codes) {
		label = rm.m.codes[code]
	} else {
		label = strconv.Itoa(code)
	}
	rm.requests.WithLabelValues(label).Inc()
}

// transport returns rt timed into the route's upstream histogram (rt
// itself when there is nothing to time).
func (rm *routeMetrics) transport(rt http.RoundTripper) http.RoundTripper {
	if rm.upstream == nil {
		return rt
	}
	return &timedTransport{rt: rt, obs: rm.upstream}
}

func (m *Metrics) reauth(websocket bool) {
	switch {
	case m == nil:
	case websocket:
		m.reauthWS.Inc()
	default:
		m.reauthHTTP.Inc()
	}
}

// websocketOpened and websocketClosed keep the open websockets gauge.
func (m *Metrics) websocketOpened() {
	if m != nil {
		m.wsOpen.Inc()
	}
}

func (m *Metrics) websocketClosed() {
	if m != nil {
		m.wsOpen.Dec()
	}
}

// websocketRefusedUserLimit counts an upgrade refused over the user's
// bound of websockets.
func (m *Metrics) websocketRefusedUserLimit() {
	if m != nil {
		m.wsUserCap.Inc()
	}
}

// Reasons of sensegate_requests_refused_total.
const (
	refuseNotSignedIn    = "not_signed_in"
	refuseIdentity       = "identity"
	refuseOrigin         = "origin"
	refuseLoginFailed    = "login_failed"
	refuseRateLimited    = "rate_limited"
	refuseWebsocketLimit = "websocket_limit"
	refuseCSRF           = "csrf"
)

var refuseReasons = []string{refuseNotSignedIn, refuseIdentity, refuseOrigin, refuseLoginFailed, refuseRateLimited, refuseWebsocketLimit, refuseCSRF}

// refusedRequest counts a request refused for reason (one of
// refuseReasons).
func (m *Metrics) refusedRequest(reason string) {
	if m == nil {
		return
	}
	if c, ok := m.refused[reason]; ok {
		c.Inc()
	}
}

// Sides of a websocket that ended it, the side label of
// sensegate_websocket_closes_total and the access log's closed_by.
const (
	sideClient    = "client"
	sideQlik      = "qlik"
	sideSensegate = "sensegate"
)

// closeCodeLabel returns the label of a close code: the code for the
// codes RFC 6455 and its registry define (1000-1015), "other" for the
// rest, so that a peer cannot grow the label set.
func closeCodeLabel(code int) string {
	if code >= 1000 && code <= 1015 {
		return strconv.Itoa(code)
	}
	return "other"
}

// websocketEnded counts a relayed websocket ended with code by side.
func (m *Metrics) websocketEnded(code int, side string) {
	if m != nil {
		m.wsCloses.WithLabelValues(closeCodeLabel(code), side).Inc()
	}
}

// sessionNotification counts a Qlik notification that ended a socket's
// session; topics that are not qlik.IsFatalTopic count as other.
func (m *Metrics) sessionNotification(topic string) {
	if m == nil {
		return
	}
	if !qlik.IsFatalTopic(topic) {
		topic = "other"
	}
	m.notified.WithLabelValues(topic).Inc()
}

// websocketBytes returns the bytes counter of a direction (nil without
// metrics).
func (m *Metrics) websocketBytes(toQlik bool) prometheus.Counter {
	switch {
	case m == nil:
		return nil
	case toQlik:
		return m.wsToQlik
	default:
		return m.wsToClient
	}
}

// timedTransport observes the time to each response's headers. Failed
// round trips are not observed: they show as 502 or 504 in
// sensegate_http_requests_total, and their time is the timeout.
type timedTransport struct {
	rt  http.RoundTripper
	obs prometheus.Observer
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(req)
	if err == nil {
		t.obs.Observe(time.Since(start).Seconds())
	}
	return resp, err
}

// CloseIdleConnections closes the wrapped transport's idle connections.
func (t *timedTransport) CloseIdleConnections() {
	if c, ok := t.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// statusRecorder remembers the status code a handler answered with. It
// lives in the request's reqState, so wrapping costs no allocation. The
// optional interfaces the proxy needs pass through: Hijack (the
// websocket upgrade, which answers 101 itself), Flush, and Unwrap for
// http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status int
	// bytes counts the body bytes written, for the access log.
	bytes int64
}

func (s *statusRecorder) WriteHeader(code int) {
	// 1xx answers other than 101 are interim: the final one follows.
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil && s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// code returns the status the client got: 200 when the handler wrote
// nothing (net/http's default).
func (s *statusRecorder) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

var (
	_ http.Hijacker = (*statusRecorder)(nil)
	_ http.Flusher  = (*statusRecorder)(nil)
)
