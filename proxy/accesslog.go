package proxy

import (
	"net/http"
	"net/netip"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The access log (Options.AccessLog) has one entry, message "access", per
// request, and one per relayed websocket when it ends:
//
//	request_id  the request's id (adopted from a trusted front door, or sensegate's)
//	user        DIRECTORY\id, when the user was identified
//	method      the request method
//	path        the path without its query
//	query_keys  the names of the query parameters, "&"-joined, when there is a query:
//	            never their values (a ticket, an xrfkey)
//	route       qlik, route (a configured route), own (sensegate's /.sensegate/) or none
//	status      the status the client got (101 for a websocket, 499 when it went away)
//	source      sensegate when sensegate made the answer (headerSensegate), qlik or
//	            upstream when it relayed Qlik's or a route's
//	refused     the reason of sensegate_requests_refused_total, when refused
//	duration    from the request to the end of the answer (of the socket)
//	bytes       body bytes written to the client (websocket: message bytes both ways)
//	client_ip   the TCP peer, or the last X-Forwarded-For entry of a trusted front door
//
// Websockets add close_code (1006 for a dropped connection) and
// closed_by (client, qlik or sensegate). Cookies, headers and query
// values are never logged.

// Route kinds of the access log.
const (
	accessRouteQlik  = "qlik"
	accessRouteRoute = "route"
	accessRouteOwn   = "own"
	accessRouteNone  = "none"
)

// Sources of an answer in the access log.
const (
	sourceSensegate = "sensegate"
	sourceQlik      = "qlik"
	sourceUpstream  = "upstream"
)

// routeKind returns the access log's route of a request that was routed
// to rm (nil: not routed).
func (h *Handler) routeKind(rm *routeMetrics) string {
	switch rm {
	case nil, &h.mNone:
		return accessRouteNone
	case &h.mQlik:
		return accessRouteQlik
	case &h.mSensegate:
		return accessRouteOwn
	}
	return accessRouteRoute
}

// logAccess writes the access log entry of a request answered with code.
func (h *Handler) logAccess(r *http.Request, st *reqState, code int) {
	route := h.routeKind(st.route)
	source := sourceSensegate
	if _, own := st.rec.Header()[headerSensegate]; !own {
		switch route {
		case accessRouteQlik:
			source = sourceQlik
		case accessRouteRoute:
			source = sourceUpstream
		}
	}
	fields := h.accessFields(r, st, route)
	fields = append(fields,
		zap.Int("status", code),
		zap.String("source", source),
		zap.Duration("duration", time.Since(st.start)),
		zap.Int64("bytes", st.rec.bytes),
	)
	if st.refused != "" {
		fields = append(fields, zap.String("refused", st.refused))
	}
	h.access.Info("access", fields...)
}

// accessFields are the fields every access entry of r has: id, user,
// method, path, query keys, route and client IP.
func (h *Handler) accessFields(r *http.Request, st *reqState, route string) []zap.Field {
	fields := make([]zap.Field, 0, 16)
	fields = append(fields, zap.String("request_id", st.id))
	if st.hasUser {
		fields = append(fields, zap.String("user", st.user.String()))
	}
	fields = append(fields, zap.String("method", r.Method), zap.String("path", r.URL.Path))
	if r.URL.RawQuery != "" {
		fields = append(fields, zap.String("query_keys", queryKeys(r.URL.RawQuery)))
	}
	fields = append(fields, zap.String("route", route), zap.String("client_ip", h.clientIP(r)))
	return fields
}

// maxQueryKeys bounds the query keys logged, and maxQueryKey each key.
const (
	maxQueryKeys = 20
	maxQueryKey  = 64
)

// queryKeys returns the names of a raw query's parameters, "&"-joined,
// without their values; a key that is not plain (escaped, or too long)
// is logged as "?": it could be a value sent without a name.
func queryKeys(raw string) string {
	var b strings.Builder
	n := 0
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		if n == maxQueryKeys {
			b.WriteString("&…")
			break
		}
		key, _, _ := strings.Cut(part, "=")
		if len(key) > maxQueryKey || !plainKey(key) {
			key = "?"
		}
		if n > 0 {
			b.WriteByte('&')
		}
		b.WriteString(key)
		n++
	}
	return b.String()
}

// plainKey reports whether a query key is made of letters, digits and
// ._- only.
func plainKey(k string) bool {
	return k != "" && adoptableID(k)
}

// clientIP returns the client's address: the TCP peer, or, when the peer
// is a trusted front door (Handler.trust), the last X-Forwarded-For
// entry, the one that front door added.
func (h *Handler) clientIP(r *http.Request) string {
	peer := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		peer = ap.Addr().Unmap().String()
	}
	if h.trust == nil {
		return peer
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 || !h.trust.TrustsPeer(r) {
		return peer
	}
	last := xff[len(xff)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
		return a.Unmap().String()
	}
	return peer
}

// wsAccess is what a relayed websocket keeps for its access entry, made
// only with the access log.
type wsAccess struct {
	fields []zap.Field
	start  time.Time
}

// newWSAccess returns the access record of a websocket that r upgraded
// (nil without the access log); the handler's entry is left to the pair.
func (h *Handler) newWSAccess(r *http.Request) *wsAccess {
	if h.access == nil {
		return nil
	}
	st := stateFrom(r.Context())
	if st == nil {
		return nil
	}
	st.handedOver = true
	return &wsAccess{fields: h.accessFields(r, st, accessRouteQlik), start: st.start}
}

// logWebsocket writes the access entry of a websocket that ended with
// code, closed by side, after relaying bytes.
func (h *Handler) logWebsocket(a *wsAccess, code int, side string, bytes int64) {
	if a == nil {
		return
	}
	fields := append(a.fields,
		zap.Int("status", http.StatusSwitchingProtocols),
		zap.String("source", sourceQlik),
		zap.Duration("duration", time.Since(a.start)),
		zap.Int64("bytes", bytes),
		zap.Int("close_code", code),
		zap.String("closed_by", side),
	)
	h.access.Info("access", fields...)
}
