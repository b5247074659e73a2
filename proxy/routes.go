package proxy

import (
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// routeProxy forwards a configured path prefix to a non-Qlik upstream.
type routeProxy struct {
	h       *Handler
	route   Route
	rp      *httputil.ReverseProxy
	metrics routeMetrics
}

func newRouteProxy(h *Handler, rt Route) *routeProxy {
	p := &routeProxy{h: h, route: rt, metrics: h.metrics.forRoute(rt.Path, true)}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p.metrics.transport(NewTransport(nil, DefaultUpstreamTimeout)),
		ModifyResponse: p.modifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, r, h.log, upstreamError("upstream of "+rt.Path+" did not answer", err))
		},
		BufferPool: newBufferPool(),
		ErrorLog:   zap.NewStdLog(h.log.Named("route")),
	}
	return p
}

func (p *routeProxy) serve(w http.ResponseWriter, r *http.Request) { p.rp.ServeHTTP(w, r) }

func (p *routeProxy) rewrite(pr *httputil.ProxyRequest) {
	if p.route.StripPrefix {
		pr.Out.URL.Path = "/" + strings.TrimPrefix(pr.Out.URL.Path, p.route.Path)
		pr.Out.URL.RawPath = ""
	}
	pr.SetURL(p.route.Upstream)
	// ReverseProxy dropped the client's X-Forwarded-* and Forwarded
	// headers: anyone can send them. X-Forwarded-For is the peer's
	// address; the host and scheme are sensegate's public ones, not the
	// Host the client sent (which would let it choose the links an
	// upstream builds) nor how it reached sensegate (plain HTTP behind a
	// TLS front door).
	pr.SetXForwarded()
	hdr := pr.Out.Header
	hdr.Set("X-Forwarded-Host", p.h.opts.PublicURL.Host)
	hdr.Set("X-Forwarded-Proto", p.h.opts.PublicURL.Scheme)
	// The upstream is not Qlik, but Qlik session cookies, sensegate's own
	// login cookies and identity headers still have no business there.
	dropCookies(hdr, p.h.isQlikCookie, p.h.stripCookies)
	for k := range hdr {
		if len(k) > 7 && strings.EqualFold(k[:7], "X-Qlik-") {
			delete(hdr, k)
		}
	}
	for _, k := range p.h.strip {
		hdr.Del(k)
	}
	setRequestID(pr.Out)
}

// modifyResponse drops Qlik session cookies an upstream might set (for
// instance a mashup server that still does its own ticketing).
func (p *routeProxy) modifyResponse(resp *http.Response) error {
	// The header marks sensegate's own answers: an upstream's never
	// carry it.
	delete(resp.Header, headerSensegate)
	sc := resp.Header.Values("Set-Cookie")
	if len(sc) == 0 {
		return nil
	}
	keep := sc[:0:0]
	for _, line := range sc {
		if c, err := http.ParseSetCookie(line); err == nil && p.h.isQlikCookie(c.Name) {
			continue
		}
		keep = append(keep, line)
	}
	resp.Header["Set-Cookie"] = keep
	return nil
}

// dropCookies removes Qlik session cookies (isQlik) and the named ones
// from a Cookie header, keeping the others.
func dropCookies(hdr http.Header, isQlik func(name string) bool, names []string) {
	lines := hdr.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var keep []string
	for _, line := range lines {
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			if part != "" && !isQlik(name) && !slices.Contains(names, name) {
				keep = append(keep, part)
			}
		}
	}
	hdr.Del("Cookie")
	if len(keep) > 0 {
		hdr.Set("Cookie", strings.Join(keep, "; "))
	}
}
