package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Issue 16: a mashup on another origin failed its CORS preflight. Pages
// of server.allowed_origins get CORS answers with credentials on Qlik's
// paths and sensegate's own endpoints; Qlik's own Access-Control-*
// headers never get through; other origins get none, and their
// preflights 403.
func TestCORS(t *testing.T) {
	// Qlik answers with CORS headers of its own, for any origin.
	e := newSpoofEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("access-control-expose-headers", "x-secret")
		w.Header().Set("qlik-csrf-token", "tok")
	})
	const (
		portal = "http://portal.example.com"
		evil   = "https://evil.example"
	)
	allowedActual := map[string]string{
		"Access-Control-Allow-Origin":      portal,
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Expose-Headers":    "qlik-csrf-token, X-Request-Id",
	}
	// preflightOK is the answer to an allowed origin's preflight, with
	// extra headers (name, value pairs).
	preflightOK := func(extra ...string) map[string]string {
		m := map[string]string{
			"Access-Control-Allow-Origin":      portal,
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Allow-Methods":     "GET, HEAD, POST, PUT, PATCH, DELETE",
			"Access-Control-Max-Age":           "600",
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	tests := []struct {
		name, method, path string
		hdr                []string // name, value pairs
		status             int
		reachedQlik        bool
		want               map[string]string // every Access-Control-* header of the answer
	}{
		{
			name: "preflight from an allowed origin, Qlik path", method: "OPTIONS", path: "/qrs/app/full",
			hdr:    []string{"Origin", portal, "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "x-qlik-xrfkey,Content-Type, x-requested-with"},
			status: 204,
			want:   preflightOK("Access-Control-Allow-Headers", "x-qlik-xrfkey, content-type, x-requested-with"),
		},
		{
			name: "preflight asking for headers off the list", method: "OPTIONS", path: "/vp/qrs/app",
			hdr:    []string{"Origin", portal, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, x-qlik-user, x-qlik-xrfkey, cookie"},
			status: 204,
			want:   preflightOK("Access-Control-Allow-Headers", "x-qlik-xrfkey"),
		},
		{
			name: "preflight from an allowed origin, own endpoint", method: "OPTIONS", path: "/.sensegate/me",
			hdr:    []string{"Origin", portal, "Access-Control-Request-Method", "GET"},
			status: 204,
			want:   preflightOK(),
		},
		{
			name: "preflight from a foreign origin", method: "OPTIONS", path: "/qrs/app",
			hdr:    []string{"Origin", evil, "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "x-qlik-xrfkey"},
			status: 403,
		},
		{
			name: "preflight from sensegate's own origin (no CORS needed)", method: "OPTIONS", path: "/qrs/app",
			hdr:    []string{"Origin", "https://sense.example.com", "Access-Control-Request-Method", "GET"},
			status: 403,
		},
		{
			name: "preflight from an allowed origin, not in its serialised form", method: "OPTIONS", path: "/qrs/app",
			hdr:    []string{"Origin", "http://PORTAL.example.com:80", "Access-Control-Request-Method", "GET"},
			status: 403,
		},
		{
			name: "GET from an allowed origin", method: "GET", path: "/qrs/app",
			hdr:    []string{"Origin", portal},
			status: 200, reachedQlik: true, want: allowedActual,
		},
		{
			name: "POST from an allowed origin", method: "POST", path: "/qrs/task/1/start",
			hdr:    []string{"Origin", portal},
			status: 200, reachedQlik: true, want: allowedActual,
		},
		{
			name: "own endpoint from an allowed origin", method: "GET", path: "/.sensegate/me",
			hdr:    []string{"Origin", portal},
			status: 200, want: allowedActual,
		},
		{
			name: "GET from a foreign origin: Qlik's CORS headers stripped", method: "GET", path: "/qrs/app",
			hdr:    []string{"Origin", evil},
			status: 200, reachedQlik: true,
		},
		{
			name: "no Origin: Qlik's CORS headers stripped", method: "GET", path: "/qrs/app",
			status: 200, reachedQlik: true,
		},
		{
			name: "OPTIONS that is not a preflight goes to Qlik", method: "OPTIONS", path: "/qrs/app",
			hdr:    []string{"Origin", portal},
			status: 200, reachedQlik: true, want: allowedActual,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, e.front.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				req.Header.Add(tt.hdr[i], tt.hdr[i+1])
			}
			if req.Header.Get("Access-Control-Request-Method") == "" {
				// Preflights carry no credentials; actual requests do.
				req.Header.Set("Authorization", "Bearer alice")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
			}
			got := map[string]string{}
			for k, v := range resp.Header {
				if strings.HasPrefix(strings.ToLower(k), "access-control-") {
					got[k] = strings.Join(v, " | ")
				}
			}
			want := tt.want
			if want == nil {
				want = map[string]string{}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Access-Control-* headers (-want +got):\n%s", diff)
			}
			if o := req.Header.Get("Origin"); o != "" && !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary = %q, want Origin in it", resp.Header.Values("Vary"))
			}
			if n := len(e.qlik.take()); (n > 0) != tt.reachedQlik {
				t.Errorf("Qlik got %d requests, want reached = %v", n, tt.reachedQlik)
			}
		})
	}
}
