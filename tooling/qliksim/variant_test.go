package qliksim

import (
	stdcmp "cmp"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"

	"github.com/sensegate/sensegate/qlik"
	"github.com/sensegate/sensegate/tooling/fakeclock"
)

// The tests of this file play each "session gone" variant of the protocol
// notes §4b, chosen per virtual proxy (VirtualProxy.UnknownCookie,
// DeadSocket, SessionCap, DropPings).

// varKill is a way a session dies: the cookie is then unknown (restart)
// or ended (idle timeout, logout elsewhere).
type varKill struct {
	name    string
	unknown bool // the cookie is unknown to QPS afterwards
	kill    func(t *testing.T, sim *Sim, clock *fakeclock.Clock, prefix string)
}

var varKills = []varKill{
	{"restart", true, func(t *testing.T, sim *Sim, _ *fakeclock.Clock, _ string) { sim.ExpireAll() }},
	{"idle timeout", false, func(t *testing.T, sim *Sim, clock *fakeclock.Clock, _ string) {
		clock.Advance(DefaultSessionTimeout + time.Second)
		if n := sim.Sweep(); n == 0 {
			t.Fatal("Sweep() ended no session")
		}
	}},
	{"logout elsewhere", false, func(t *testing.T, sim *Sim, _ *fakeclock.Clock, prefix string) {
		if st, b := qpsDo(t, qpsClient(t, sim), "DELETE", qpsPath(sim, prefix, "user/ACME/alice"), nil); st != http.StatusOK {
			t.Fatalf("DELETE user: %d %s", st, b)
		}
	}},
}

// loginAndKill logs alice in on the virtual proxy prefix and ends her
// session as k does. It returns her cookie and the sequence number of the
// last event then.
func (k varKill) loginAndKill(t *testing.T, sim *Sim, clock *fakeclock.Clock, prefix string) (*http.Cookie, int64) {
	t.Helper()
	c := login(t, sim, prefix, `ACME\alice`)
	k.kill(t, sim, clock, prefix)
	return c, lastSeq(sim)
}

// varEvents returns the events after seq whose Variant is set.
func varEvents(sim *Sim, seq int64) []Event {
	return eventsWhere(sim, seq, func(e Event) bool { return e.Variant != "" })
}

// varWaitEvent polls (bounded) for an event after seq that keep accepts:
// the simulator logs a websocket message after it has handled it, which
// the client cannot otherwise observe when nothing is answered.
func varWaitEvent(t *testing.T, sim *Sim, seq int64, what string, keep func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, e := range sim.Events(seq) {
			if keep(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event after seq %d; events: %+v", what, seq, sim.Events(seq))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// varDial opens an Engine websocket (engHandshake) and, when the
// handshake is refused, returns the refusal's status, headers and body
// (gorilla keeps the first KiB of it).
func varDial(t *testing.T, sim *Sim, prefix, path string, c *http.Cookie, hdr ...string) (ws *websocket.Conn, status int, h http.Header, body string) {
	t.Helper()
	ws, resp, err := engHandshake(t, sim, prefix, path, c, hdr...)
	if resp == nil {
		t.Fatalf("dial %s: %v, no response", path, err)
	}
	if resp.Body != nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
	}
	return ws, resp.StatusCode, resp.Header, body
}

func TestVariantConfigDefaults(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	for _, vp := range sim.vps {
		got := []any{vp.UnknownCookie, vp.DeadSocket, vp.SessionCap, vp.DropPings}
		want := []any{UnknownCookie500Text, DeadSocketMustAuthenticate, SessionCapRedeem, false}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("virtual proxy %q variants (-want +got):\n%s", vp.Prefix, diff)
		}
	}
}

// TestVariantUnknownCookie: an HTTP request with a cookie QPS does not
// know answers as unknown_cookie says, on a page, on QRS and on
// /qps/csrftoken; the Personal API stays {"session":"inactive"}; a cookie
// of a session QPS ended itself gets the login redirect in every variant.
func TestVariantUnknownCookie(t *testing.T) {
	tests := []struct {
		value      string // "" = not set
		wantStatus int
		wantType   string // Content-Type prefix
	}{
		{"", http.StatusInternalServerError, "text/plain"},
		{UnknownCookie500Text, http.StatusInternalServerError, "text/plain"},
		{UnknownCookie500HTML, http.StatusInternalServerError, "text/html"},
		{UnknownCookie302, http.StatusFound, ""},
	}
	for _, tt := range tests {
		for _, prefix := range []string{"", "ticket"} {
			t.Run(stdcmp.Or(tt.value, "unset")+"/prefix="+prefix, func(t *testing.T) {
				sim, clock := newTestSim(t, func(c *Config) {
					for i := range c.VirtualProxies {
						c.VirtualProxies[i].UnknownCookie = tt.value
						c.VirtualProxies[i].WebsocketCSRF = true // /qps/csrftoken answers
					}
				})
				played := "unknown-cookie=" + stdcmp.Or(tt.value, UnknownCookie500Text)
				for _, k := range varKills {
					t.Run(k.name, func(t *testing.T) {
						c, seq := k.loginAndKill(t, sim, clock, prefix)
						for _, path := range []string{"/hub/", "/qrs/about?xrfkey=" + testXrfkey, "/qps/csrftoken"} {
							resp, body := proxyGet(t, sim, vpURL(sim, prefix, path), c, "X-Qlik-Xrfkey", testXrfkey)
							if !k.unknown {
								// Ended by QPS itself: the login redirect, whatever the variant.
								if resp.StatusCode != http.StatusFound || !qlik.IsLoginURL(resp.Header.Get("Location")) {
									t.Errorf("GET %s after %s = %d Location %q, want 302 to the login", path, k.name, resp.StatusCode, resp.Header.Get("Location"))
								}
								continue
							}
							ct := resp.Header.Get("Content-Type")
							if resp.StatusCode != tt.wantStatus || !strings.HasPrefix(ct, tt.wantType) {
								t.Errorf("GET %s = %d %q, want %d %s…", path, resp.StatusCode, ct, tt.wantStatus, tt.wantType)
							}
							switch tt.wantStatus {
							case http.StatusFound:
								if loc := resp.Header.Get("Location"); !qlik.IsLoginURL(loc) {
									t.Errorf("GET %s: Location %q, want the login module", path, loc)
								}
							case http.StatusInternalServerError:
								i := strings.Index(body, msgAuthError)
								if i < 0 || !qlik.IsAuthError(resp.StatusCode, []byte(body)) {
									t.Errorf("GET %s: body %.300q, want %q within %d bytes", path, body, msgAuthError, qlik.AuthErrorPeek)
								}
								if tt.wantType == "text/html" {
									// The sentence sits inside the markup, after the head and styles.
									if i < 300 || !strings.HasPrefix(body, "<!DOCTYPE html>") || !strings.Contains(body[:i], "<style>") {
										t.Errorf("GET %s: sentence at byte %d of %.100q…, want an HTML page with it after a few hundred bytes", path, i, body)
									}
								} else if body != msgAuthError+"\n" {
									t.Errorf("GET %s: body %q, want exactly %q", path, body, msgAuthError+"\n")
								}
							}
						}
						// The Personal API does not follow the variant.
						resp, body := proxyGet(t, sim, vpURL(sim, prefix, "/qps/user"), c)
						if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != `{"session":"inactive"}` {
							t.Errorf("GET /qps/user = %d %s, want 200 {\"session\":\"inactive\"}", resp.StatusCode, body)
						}
						var variants []string
						for _, e := range varEvents(sim, seq) {
							variants = append(variants, e.Path+" "+e.Variant)
						}
						var want []string
						if k.unknown {
							for _, p := range []string{"/hub/", "/qrs/about", "/qps/csrftoken"} {
								want = append(want, strings.TrimPrefix(vpURL(sim, prefix, p), sim.ProxyURL())+" "+played)
							}
						}
						if diff := cmp.Diff(want, variants); diff != "" {
							t.Errorf("events with a variant (-want +got):\n%s", diff)
						}
					})
				}
			})
		}
	}
}

// TestVariantDeadSocket: an Engine upgrade with a dead cookie gets what
// dead_socket says, for every way the session died; an upgrade without a
// cookie gets mustAuthenticate in every variant.
func TestVariantDeadSocket(t *testing.T) {
	tests := []struct {
		value      string
		wantStatus int // of the handshake
	}{
		{"", http.StatusSwitchingProtocols},
		{DeadSocketMustAuthenticate, http.StatusSwitchingProtocols},
		{DeadSocketClose, http.StatusSwitchingProtocols},
		{DeadSocket500, http.StatusInternalServerError},
		{DeadSocket302, http.StatusFound},
		{DeadSocket401, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(stdcmp.Or(tt.value, "unset"), func(t *testing.T) {
			sim, clock := newTestSim(t, func(c *Config) { c.VirtualProxies[1].DeadSocket = tt.value })
			const prefix = "ticket"
			played := "dead-socket=" + stdcmp.Or(tt.value, DeadSocketMustAuthenticate)
			for _, k := range varKills {
				t.Run(k.name, func(t *testing.T) {
					c, seq := k.loginAndKill(t, sim, clock, prefix)
					ws, status, h, body := varDial(t, sim, prefix, "/app/engineData", c)
					if status != tt.wantStatus {
						t.Fatalf("handshake = %d %q, want %d", status, body, tt.wantStatus)
					}
					switch tt.value {
					case DeadSocket500:
						if !strings.Contains(body, msgAuthError) {
							t.Errorf("500 body %q, want %q", body, msgAuthError)
						}
					case DeadSocket302:
						if !qlik.IsLoginURL(h.Get("Location")) {
							t.Errorf("302 Location %q, want the login module", h.Get("Location"))
						}
					case DeadSocketClose:
						engSendRaw(t, ws, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "EngineVersion", "handle": -1, "params": []any{}, "tag": "first"})
						engWantDrop(t, ws)
					case "", DeadSocketMustAuthenticate:
						engSend(t, ws, 1, "EngineVersion", -1)
						got := engRead(t, ws)
						if p, _ := got["params"].(map[string]any); got["method"] != "OnAuthenticationInformation" || p["mustAuthenticate"] != true {
							t.Fatalf("first frame %v, want OnAuthenticationInformation mustAuthenticate:true", got)
						}
						engWantClose(t, ws, websocket.ClosePolicyViolation, "Authentication required")
					}
					// The simulator logs which variant it played (the drop is
					// logged as the connection ends: poll).
					e := varWaitEvent(t, sim, seq, played, func(e Event) bool { return e.Variant != "" })
					if e.Variant != played || e.User != "" || e.Path != "/"+prefix+"/app/engineData" {
						t.Errorf("event %+v, want variant %q without a user", e, played)
					}
				})
			}
			// No cookie at all: mustAuthenticate whatever the variant [D21].
			ws, status, _, _ := varDial(t, sim, prefix, "/app/engineData", nil)
			if status != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade without a cookie = %d, want 101", status)
			}
			engSend(t, ws, 1, "EngineVersion", -1)
			if got := engRead(t, ws); got["method"] != "OnAuthenticationInformation" {
				t.Fatalf("without a cookie: first frame %v, want OnAuthenticationInformation", got)
			}
			engWantClose(t, ws, websocket.ClosePolicyViolation, "Authentication required")
			// A live session is untouched by the variant.
			ws = engMustDial(t, sim, prefix, "/app/engineData", login(t, sim, prefix, `ACME\bob`))
			engGreet(t, ws, `ACME\bob`)
			// The default virtual proxy keeps the default.
			ws = engMustDial(t, sim, "", "/app/engineData", &http.Cookie{Name: DefaultCookieName, Value: newGUID()})
			engSend(t, ws, 1, "EngineVersion", -1)
			if got := engRead(t, ws); got["method"] != "OnAuthenticationInformation" {
				t.Fatalf("default VP, unknown cookie: first frame %v, want OnAuthenticationInformation", got)
			}
		})
	}
}

// TestVariantCSRFStaleToken: with websocket CSRF protection, the token of
// a dead session is refused 403 on the handshake exactly like a missing
// token, whatever dead_socket says [C2][M1]; fetching a token again with
// the dead cookie reveals the dead session; a new session's token works.
func TestVariantCSRFStaleToken(t *testing.T) {
	for _, value := range []string{DeadSocketMustAuthenticate, DeadSocketClose, DeadSocket500, DeadSocket302, DeadSocket401} {
		t.Run(value, func(t *testing.T) {
			sim, clock := newTestSim(t, func(c *Config) {
				c.VirtualProxies[0].WebsocketCSRF = true
				c.VirtualProxies[0].DeadSocket = value
			})
			const origin = "https://localhost"
			token := func(c *http.Cookie) (int, string) {
				resp, _ := proxyGet(t, sim, vpURL(sim, "", "/qps/csrftoken"), c, "Origin", origin)
				return resp.StatusCode, resp.Header.Get("qlik-csrf-token")
			}
			for _, k := range varKills {
				t.Run(k.name, func(t *testing.T) {
					c := login(t, sim, "", `ACME\alice`)
					st, tok := token(c)
					if st != http.StatusNoContent || tok == "" {
						t.Fatalf("GET /qps/csrftoken = %d %q, want 204 and a token", st, tok)
					}
					// The token works while the session lives.
					ws, status, _, _ := varDial(t, sim, "", "/app/engineData?qlik-csrf-token="+url.QueryEscape(tok), c, "Origin", origin)
					if status != http.StatusSwitchingProtocols {
						t.Fatalf("live session, its token = %d, want 101", status)
					}
					engGreet(t, ws, `ACME\alice`)
					k.kill(t, sim, clock, "")
					_, stale, _, staleBody := varDial(t, sim, "", "/app/engineData?qlik-csrf-token="+url.QueryEscape(tok), c, "Origin", origin)
					_, missing, _, missingBody := varDial(t, sim, "", "/app/engineData", c, "Origin", origin)
					if stale != http.StatusForbidden || missing != http.StatusForbidden || staleBody != missingBody {
						t.Fatalf("dead cookie: stale token = %d %q, missing token = %d %q; want both the same 403", stale, staleBody, missing, missingBody)
					}
					// Asking for a token again reveals the dead session
					// (unknown: 500 by default; ended: the login redirect).
					want := http.StatusFound
					if k.unknown {
						want = http.StatusInternalServerError
					}
					if st, tok := token(c); st != want || tok != "" {
						t.Errorf("GET /qps/csrftoken with the dead cookie = %d %q, want %d without a token", st, tok, want)
					}
					// A new session and its token work.
					c = login(t, sim, "", `ACME\alice`)
					_, tok = token(c)
					ws, status, _, _ = varDial(t, sim, "", "/app/engineData?qlik-csrf-token="+url.QueryEscape(tok), c, "Origin", origin)
					if status != http.StatusSwitchingProtocols {
						t.Fatalf("new session, new token = %d, want 101", status)
					}
					engGreet(t, ws, `ACME\alice`)
					engClose(t, ws)
				})
			}
		})
	}
}

// varCapFrame sends the first message on an Engine socket of session c and
// returns the first frame's method, after checking the greeting or the
// cap's refusal in full.
func varCapFrame(t *testing.T, sim *Sim, c *http.Cookie) string {
	t.Helper()
	ws := engMustDial(t, sim, "", "/app/engineData", c)
	engSend(t, ws, 1, "EngineVersion", -1)
	got := engRead(t, ws)
	switch got["method"] {
	case "OnAuthenticationInformation":
		if p, _ := got["params"].(map[string]any); p["mustAuthenticate"] != false {
			t.Fatalf("first frame %v, want mustAuthenticate:false", got)
		}
		engRead(t, ws) // OnConnected
		engRead(t, ws) // the answer
		engClose(t, ws)
	case topicMaxParallelSessions:
		p, _ := got["params"].(map[string]any)
		if _, hasID := got["id"]; hasID || p["severity"] != "fatal" || !strings.Contains(strings.ToLower(p["message"].(string)), qlik.TooManySessionsText) {
			t.Fatalf("frame %v, want a fatal notification about too many sessions", got)
		}
		if _, err := time.Parse(time.RFC3339, p["timestamp"].(string)); err != nil {
			t.Errorf("timestamp: %v", err)
		}
		// The message is not answered and the socket is closed.
		engWantClose(t, ws, websocket.CloseNormalClosure, errTooManySessions.Error())
	default:
		t.Fatalf("first frame %v", got)
	}
	return got["method"].(string)
}

// TestVariantSessionCapSocket: with session_cap "socket" a 6th session is
// created, and its Engine socket gets OnMaxParallelSessionsExceeded; ending
// an older session through QPS frees the slot.
func TestVariantSessionCapSocket(t *testing.T) {
	sim, _ := newTestSim(t, func(c *Config) { c.VirtualProxies[0].SessionCap = SessionCapSocket })
	qps := qpsClient(t, sim)
	var cookies []*http.Cookie
	for range MaxParallelSessions + 1 {
		cookies = append(cookies, login(t, sim, "", `ACME\alice`)) // login fails the test on a refusal
	}
	if got := sim.Counts(`ACME\alice`); got.SessionsCreated != 6 || got.SessionsRefused != 0 || got.LiveSessions != 6 {
		t.Fatalf("counts after 6 logins = %+v, want 6 created, 0 refused, 6 live", got)
	}
	// HTTP works for the 6th session: only its sockets are refused.
	if resp, _ := proxyGet(t, sim, vpURL(sim, "", "/hub/"), cookies[5]); resp.StatusCode != http.StatusOK {
		t.Errorf("hub with the 6th session = %d, want 200", resp.StatusCode)
	}
	seq := lastSeq(sim)
	if got := varCapFrame(t, sim, cookies[5]); got != topicMaxParallelSessions {
		t.Fatalf("6th session's socket got %s", got)
	}
	e := varWaitEvent(t, sim, seq, "session-cap", func(e Event) bool { return e.Variant != "" })
	if e.Variant != "session-cap=socket" || e.SessionID != cookies[5].Value || e.User != `ACME\alice` || e.Method != "EngineVersion" {
		t.Errorf("event %+v, want session-cap=socket on the 6th session", e)
	}
	for i := range MaxParallelSessions {
		if got := varCapFrame(t, sim, cookies[i]); got != "OnAuthenticationInformation" {
			t.Fatalf("session %d's socket got %s, want the greeting", i+1, got)
		}
	}
	if got := sim.Counts(`ACME\alice`).SocketsRefused; got != 1 {
		t.Errorf("SocketsRefused = %d, want 1", got)
	}

	// The session API ends the oldest: the 6th gets its slot.
	if st, b := qpsDo(t, qps, "DELETE", qpsPath(sim, "", "session/"+cookies[0].Value), nil); st != http.StatusOK {
		t.Fatalf("DELETE session: %d %s", st, b)
	}
	if got := varCapFrame(t, sim, cookies[5]); got != "OnAuthenticationInformation" {
		t.Fatalf("6th session after freeing a slot got %s, want the greeting", got)
	}
	// A 7th session is beyond the cap again; ending the refused one and
	// an abandoned one (as a proxy does) lets the user's next login work.
	seventh := login(t, sim, "", `ACME\alice`)
	if got := varCapFrame(t, sim, seventh); got != topicMaxParallelSessions {
		t.Fatalf("7th session's socket got %s", got)
	}
	for _, id := range []string{seventh.Value, cookies[1].Value} {
		if st, b := qpsDo(t, qps, "DELETE", qpsPath(sim, "", "session/"+id), nil); st != http.StatusOK {
			t.Fatalf("DELETE session: %d %s", st, b)
		}
	}
	if got := varCapFrame(t, sim, login(t, sim, "", `ACME\alice`)); got != "OnAuthenticationInformation" {
		t.Fatalf("new session after ending two got %s, want the greeting", got)
	}
	// The user API ends them all at once.
	if st, b := qpsDo(t, qps, "DELETE", qpsPath(sim, "", "user/ACME/alice"), nil); st != http.StatusOK {
		t.Fatalf("DELETE user: %d %s", st, b)
	}
	if got := sim.Counts(`ACME\alice`); got.LiveSessions != 0 || got.SocketsRefused != 2 || got.SessionsRefused != 0 {
		t.Errorf("counts = %+v, want 0 live, 2 sockets refused, 0 sessions refused", got)
	}
	if got := varCapFrame(t, sim, login(t, sim, "", `ACME\alice`)); got != "OnAuthenticationInformation" {
		t.Fatalf("new session after the user API got %s, want the greeting", got)
	}
}

// TestVariantSessionCapRedeem: the default refuses the 6th login itself,
// and the sockets of the first five are never refused.
func TestVariantSessionCapRedeem(t *testing.T) {
	for _, value := range []string{"", SessionCapRedeem} {
		t.Run(stdcmp.Or(value, "unset"), func(t *testing.T) {
			sim, _ := newTestSim(t, func(c *Config) { c.VirtualProxies[0].SessionCap = value })
			var cookies []*http.Cookie
			for range MaxParallelSessions {
				cookies = append(cookies, login(t, sim, "", `ACME\alice`))
			}
			tk := ticket(t, sim, "", `ACME\alice`)
			resp, body := proxyGet(t, sim, vpURL(sim, "", "/hub/?qlikTicket="+tk), nil)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(strings.ToLower(body), qlik.TooManySessionsText) {
				t.Fatalf("6th redemption = %d %q, want 403 too many sessions", resp.StatusCode, body)
			}
			for i, c := range cookies {
				if got := varCapFrame(t, sim, c); got != "OnAuthenticationInformation" {
					t.Fatalf("session %d's socket got %s", i+1, got)
				}
			}
			if got := sim.Counts(`ACME\alice`); got.SessionsRefused != 1 || got.SocketsRefused != 0 {
				t.Errorf("counts = %+v, want 1 session refused, 0 sockets refused", got)
			}
		})
	}
}

// TestVariantDropPings: with drop_pings a ping gets no pong and the next
// request no answer while the socket stays open; without it the pong and
// the answer come.
func TestVariantDropPings(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(map[bool]string{false: "pong", true: "drop"}[drop], func(t *testing.T) {
			sim, _ := newTestSim(t, func(c *Config) { c.VirtualProxies[0].DropPings = drop })
			c := login(t, sim, "", `ACME\alice`)
			ws := engMustDial(t, sim, "", "/app/engineData", c)
			engGreet(t, ws, `ACME\alice`)
			// The pong handler runs inside ReadMessage, on this goroutine.
			pongs := 0
			ws.SetPongHandler(func(string) error { pongs++; return nil })
			seq := lastSeq(sim)
			if err := ws.WriteControl(websocket.PingMessage, []byte("keepalive"), time.Now().Add(engReadTimeout)); err != nil {
				t.Fatal(err)
			}
			engSendRaw(t, ws, map[string]any{"jsonrpc": "2.0", "id": 2, "method": "EngineVersion", "handle": -1, "params": []any{}, "tag": "after-ping"})
			if !drop {
				// The server handles the ping before the request: the pong
				// comes before the answer.
				if got := engRead(t, ws); got["id"] != float64(2) || pongs != 1 {
					t.Fatalf("after a ping: frame %v with %d pongs, want the answer after 1 pong", got, pongs)
				}
				if ev := varEvents(sim, seq); len(ev) != 0 {
					t.Errorf("events with a variant: %+v, want none", ev)
				}
				return
			}
			// The simulator has seen the request once it logs it; it
			// answers nothing, so a short read deadline proves it.
			e := varWaitEvent(t, sim, seq, "unanswered request", func(e Event) bool { return e.Kind == "ws" && e.Tag == "after-ping" })
			if e.Variant != "drop-pings" || e.User != `ACME\alice` {
				t.Errorf("request event %+v, want variant drop-pings as alice", e)
			}
			ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, b, err := ws.ReadMessage()
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || pongs != 0 {
				t.Fatalf("after a dropped ping: frame %q, err %v, %d pongs; want nothing before the deadline", b, err, pongs)
			}
			var kinds []string
			for _, e := range sim.Events(seq) {
				kinds = append(kinds, e.Kind+" "+e.Variant)
			}
			if diff := cmp.Diff([]string{"ws-ping drop-pings", "ws drop-pings"}, kinds); diff != "" {
				t.Errorf("events after the ping (-want +got):\n%s", diff)
			}
			// The socket stays open on the server.
			for _, s := range sim.Sessions() {
				if s.ID == c.Value && s.Websockets != 1 {
					t.Errorf("session has %d websockets, want the deaf one still open", s.Websockets)
				}
			}
		})
	}
}

// TestVariantConfigYAML: the variant keys load from YAML, take effect, and
// an unknown value is an error naming the key and the allowed values.
func TestVariantConfigYAML(t *testing.T) {
	got, err := LoadConfig(cfgWrite(t, `
virtual_proxies:
  - prefix: ""
    session_cookie: X-Qlik-Session
    host_allow_list: [localhost]
  - prefix: restart
    session_cookie: X-Qlik-Session-restart
    host_allow_list: [localhost]
    unknown_cookie: 500-html
    dead_socket: close
    session_cap: socket
    drop_pings: true
  - prefix: redirect
    session_cookie: X-Qlik-Session-redirect
    unknown_cookie: "302"
    dead_socket: "401"
    session_cap: redeem
    drop_pings: false
`))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	type variants struct{ UnknownCookie, DeadSocket, SessionCap string }
	var vs []variants
	var pings []bool
	for _, vp := range got.VirtualProxies {
		vs = append(vs, variants{vp.UnknownCookie, vp.DeadSocket, vp.SessionCap})
		pings = append(pings, vp.DropPings)
	}
	want := []variants{{}, {UnknownCookie500HTML, DeadSocketClose, SessionCapSocket}, {UnknownCookie302, DeadSocket401, SessionCapRedeem}}
	if diff := cmp.Diff(want, vs); diff != "" {
		t.Errorf("loaded variants (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{false, true, false}, pings); diff != "" {
		t.Errorf("loaded drop_pings (-want +got):\n%s", diff)
	}
	// The loaded keys take effect.
	sim, _ := newTestSim(t, func(c *Config) { c.VirtualProxies = got.VirtualProxies })
	for prefix, want := range map[string]int{"": http.StatusInternalServerError, "restart": http.StatusInternalServerError, "redirect": http.StatusFound} {
		c := login(t, sim, prefix, `ACME\alice`)
		sim.ExpireAll()
		resp, _ := proxyGet(t, sim, vpURL(sim, prefix, "/hub/"), c)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != want || prefix == "restart" && !strings.HasPrefix(ct, "text/html") {
			t.Errorf("VP %q, unknown cookie: %d %q, want %d (HTML for restart)", prefix, resp.StatusCode, ct, want)
		}
	}

	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown_cookie", "virtual_proxies:\n  - session_cookie: X\n    unknown_cookie: 500\n",
			[]string{`virtual_proxies[0].unknown_cookie: "500" must be one of "500-text" (the default, also when empty), "500-html", "302"`}},
		{"dead_socket", "virtual_proxies:\n  - session_cookie: X\n  - prefix: b\n    session_cookie: Y\n    dead_socket: Close\n",
			[]string{`virtual_proxies[1].dead_socket: "Close" must be one of "must-authenticate" (the default, also when empty), "close", "500", "302", "401"`}},
		{"session_cap", "virtual_proxies:\n  - session_cookie: X\n    session_cap: login\n",
			[]string{`virtual_proxies[0].session_cap: "login" must be one of "redeem" (the default, also when empty), "socket"`}},
		{"all at once", "virtual_proxies:\n  - session_cookie: X\n    unknown_cookie: html\n    dead_socket: 403\n    session_cap: none\n",
			[]string{"virtual_proxies[0].unknown_cookie", "virtual_proxies[0].dead_socket", "virtual_proxies[0].session_cap"}},
		{"drop_pings not a bool", "virtual_proxies:\n  - session_cookie: X\n    drop_pings: sometimes\n", []string{"line 3", "sometimes"}},
		{"key typo", "virtual_proxies:\n  - session_cookie: X\n    dead_sockets: close\n", []string{"line 3", "dead_sockets"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := cfgWrite(t, tt.yaml)
			_, err := LoadConfig(path)
			if missing := cfgErrorHas(err, append(tt.want, path)...); missing != nil {
				t.Errorf("LoadConfig(%q) error:\n%v\nwant it to contain %q", tt.yaml, err, missing)
			}
		})
	}
	// Validate (the Go-level path) says the same.
	cfg := DefaultConfig()
	cfg.VirtualProxies[1].DeadSocket = "503"
	if missing := cfgErrorHas(cfg.Validate(), `virtual_proxies[1].dead_socket: "503" must be one of`); missing != nil {
		t.Errorf("Validate() = %v, want %q", cfg.Validate(), missing)
	}
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "dead_socket") {
		t.Errorf("New with dead_socket 503 = %v, want an error naming dead_socket", err)
	}
}
