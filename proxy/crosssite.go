package proxy

import (
	"errors"
	"net/http"
	"strconv"
)

// maxEchoedOrigin bounds how much of a refused Origin is repeated in the
// answer and the log.
const maxEchoedOrigin = 200

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// isSafeMethod reports whether method is one of RFC 9110's safe methods,
// which must not change state and so may come from any site.
func isSafeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// crossSiteRefused refuses, with 403, a request that may change state
// (any method but the safe ones) sent by a page of another site: its
// Origin is neither sensegate's public origin nor one of the allowed
// origins, or it has no Origin and the browser marked it
// Sec-Fetch-Site: cross-site. Browsers attach the user's cookies to such
// requests (a form on any site can POST /.sensegate/logout or a QRS
// call), so without this check any site could act as the user. Clients
// that are not browsers send neither header and pass. It reports whether
// the request was refused (and answered).
func (h *Handler) crossSiteRefused(w http.ResponseWriter, r *http.Request) bool {
	if isSafeMethod(r.Method) {
		return false
	}
	origins := r.Header.Values("Origin")
	switch {
	case len(origins) > 1:
		writeError(w, r, h.log, &Error{Status: http.StatusForbidden, Msg: "cross-site request refused: more than one Origin header"})
		return true
	case len(origins) == 1 && !h.originAllowed(origins[0]):
		o := strconv.Quote(truncate(origins[0], maxEchoedOrigin))
		writeError(w, r, h.log, &Error{Status: http.StatusForbidden,
			Msg: "cross-site request refused: the Origin " + o + " is neither sensegate's own (server.public_url) nor one of server.allowed_origins",
			Err: errors.New("origin " + o)})
		return true
	case len(origins) == 0 && r.Header.Get("Sec-Fetch-Site") == "cross-site":
		writeError(w, r, h.log, &Error{Status: http.StatusForbidden, Msg: "cross-site request refused: the browser says it comes from another site (Sec-Fetch-Site: cross-site)"})
		return true
	}
	return false
}
