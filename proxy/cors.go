package proxy

import (
	"maps"
	"net/http"
	"strconv"
	"strings"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/qlik"
)

// CORS (Fetch standard, "CORS protocol") for mashups served from another
// origin than sensegate's: a page of an origin in Options.AllowedOrigins
// may call Qlik's paths and sensegate's own endpoints with credentials
// and read the answers. sensegate answers for Qlik: Qlik's own
// Access-Control-* headers never reach the browser, since Qlik judges
// qlik.origin (what sensegate sends it), not the page's origin.
//
// A preflight from any other origin is refused with 403 and no CORS
// headers; an actual request from one gets no CORS headers, so the
// browser does not let the page read the answer (and crossSiteRefused
// refuses it outright when it may change state).

// corsMaxAge is how long, in seconds, a browser may cache a preflight's
// answer (browsers cap it: Chromium at 7200).
const corsMaxAge = 600

// corsMethods are the methods an allowed origin may use.
const corsMethods = "GET, HEAD, POST, PUT, PATCH, DELETE"

// corsAllowedHeaders are the request headers a preflight may ask for
// (lower case); requested ones are echoed when on this list, others are
// left out and the browser refuses the request. Cookie and Authorization
// are not among them: credentials are the browser's cookies, except with
// an identity provider that exchanges bearer tokens for its login cookie
// (corsConfig).
var corsAllowedHeaders = map[string]bool{
	"accept": true, "accept-language": true, "content-language": true, "content-type": true,
	"cache-control": true, "pragma": true, "if-match": true, "if-none-match": true,
	"x-qlik-xrfkey": true, "x-requested-with": true, strings.ToLower(HeaderRequestID): true,
	"x-qlik-user-agent": true,
}

// corsExposed are the response headers a page of an allowed origin may
// read besides the CORS-safelisted ones: Qlik's websocket CSRF token and
// sensegate's request id.
var corsExposed = qlik.CSRFTokenHeader + ", " + HeaderRequestID

// corsConfig returns the request headers preflights may ask for and the
// response headers exposed, for provider. A provider that exchanges bearer
// tokens for a login cookie (identity.TokenExchanger, the jwt provider
// with identity.jwt.session) serves single-page apps that send
// Authorization, to /.sensegate/session at least, and read its RFC 6750
// challenges (WWW-Authenticate).
func corsConfig(provider identity.Provider) (allowed map[string]bool, exposed string) {
	if ex, ok := provider.(identity.TokenExchanger); !ok || !ex.ExchangesTokens() {
		return corsAllowedHeaders, corsExposed
	}
	allowed = maps.Clone(corsAllowedHeaders)
	allowed["authorization"] = true
	return allowed, corsExposed + ", WWW-Authenticate"
}

// cors applies CORS to a request for a Qlik path or one of sensegate's own
// endpoints. A preflight (OPTIONS with Access-Control-Request-Method) is
// answered here, 204 for an allowed origin and 403 for any other, and it
// reports true. Otherwise it sets the response headers an allowed origin
// gets and reports false.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request) bool {
	origins := r.Header.Values("Origin")
	if len(origins) == 0 {
		return false
	}
	hdr := w.Header()
	// The answer depends on Origin whatever it is: shared caches must
	// not give one origin's answer to another.
	hdr.Add("Vary", "Origin")
	allowed := len(origins) == 1 && h.corsAllowed(origins[0])
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if !preflight {
		if allowed {
			hdr.Set("Access-Control-Allow-Origin", origins[0])
			hdr.Set("Access-Control-Allow-Credentials", "true")
			hdr.Set("Access-Control-Expose-Headers", h.corsExposed)
		}
		return false
	}
	if !allowed {
		o := strconv.Quote(truncate(strings.Join(origins, ", "), maxEchoedOrigin))
		writeError(w, r, h.log, &Error{Status: http.StatusForbidden,
			Msg: "cross-origin request refused: the Origin " + o + " is not one of server.allowed_origins"})
		return true
	}
	hdr.Add("Vary", "Access-Control-Request-Method")
	hdr.Add("Vary", "Access-Control-Request-Headers")
	hdr.Set("Access-Control-Allow-Origin", origins[0])
	hdr.Set("Access-Control-Allow-Credentials", "true")
	hdr.Set("Access-Control-Allow-Methods", corsMethods)
	if reqHdrs := corsRequestedHeaders(h.corsHeaders, r.Header.Values("Access-Control-Request-Headers")); reqHdrs != "" {
		hdr.Set("Access-Control-Allow-Headers", reqHdrs)
	}
	hdr.Set("Access-Control-Max-Age", strconv.Itoa(corsMaxAge))
	w.WriteHeader(http.StatusNoContent)
	return true
}

// corsAllowed reports whether a page of origin may read answers with
// credentials: origin, exactly as the browser sent it, is one of
// server.allowed_origins in its normalised form (the browser compares
// Access-Control-Allow-Origin with its own serialisation byte for byte).
func (h *Handler) corsAllowed(origin string) bool {
	o, ok := qlik.NormalizeOrigin(origin)
	return ok && o == origin && h.corsOrigins[o]
}

// corsRequestedHeaders returns the requested headers that are in allowed,
// comma-separated, in the order asked.
func corsRequestedHeaders(allowed map[string]bool, values []string) string {
	var b strings.Builder
	n := 0
	for _, v := range values {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if !allowed[name] || n >= len(allowed) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(name)
			n++
		}
	}
	return b.String()
}

// stripCORS deletes the Access-Control-* headers of a Qlik answer:
// sensegate answers CORS for Qlik (cors).
func stripCORS(hdr http.Header) {
	for k := range hdr {
		if len(k) > len("Access-Control-") && strings.EqualFold(k[:len("Access-Control-")], "Access-Control-") {
			delete(hdr, k)
		}
	}
}
