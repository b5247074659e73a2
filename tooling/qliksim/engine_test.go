package qliksim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestMain checks that no goroutine (websocket reader or writer, server
// loop) outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	engSalesID     = "5a8a1b2c-0001-4c1e-9d3f-000000000001"
	engFinanceID   = "5a8a1b2c-0002-4c1e-9d3f-000000000002"
	engHandbookID  = "5a8a1b2c-0003-4c1e-9d3f-000000000003"
	engSandboxID   = "5a8a1b2c-0004-4c1e-9d3f-000000000004"
	engReadTimeout = 20 * time.Second
)

// engWSURL is the websocket URL of path on the virtual proxy prefix.
func engWSURL(sim *Sim, prefix, path string) string {
	u := vpURL(sim, prefix, path)
	if s, ok := strings.CutPrefix(u, "https://"); ok {
		return "wss://" + s
	}
	return "ws://" + strings.TrimPrefix(u, "http://")
}

// engHandshake opens an Engine websocket with an optional session cookie
// and extra headers (name, value pairs). The socket, if any, is closed
// when the test ends; the response's body, if any, is the caller's.
func engHandshake(t *testing.T, sim *Sim, prefix, path string, c *http.Cookie, hdr ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	tlsCfg, err := sim.Certs().ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{TLSClientConfig: tlsCfg, HandshakeTimeout: 10 * time.Second}
	h := http.Header{}
	if c != nil {
		h.Set("Cookie", c.Name+"="+c.Value)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	ws, resp, err := d.Dial(engWSURL(sim, prefix, path), h)
	if ws != nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

// engDial is engHandshake that closes the response's body. It does not
// fail the test on a refused handshake: callers check the response.
func engDial(t *testing.T, sim *Sim, prefix, path string, c *http.Cookie, hdr ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ws, resp, err := engHandshake(t, sim, prefix, path, c, hdr...)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return ws, resp, err
}

// engMustDial is engDial that requires the upgrade to succeed.
func engMustDial(t *testing.T, sim *Sim, prefix, path string, c *http.Cookie, hdr ...string) *websocket.Conn {
	t.Helper()
	ws, resp, err := engDial(t, sim, prefix, path, c, hdr...)
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, st)
	}
	return ws
}

// engRead reads the next frame as a JSON object.
func engRead(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(engReadTimeout))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("frame %.200q is not a JSON object: %v", b, err)
	}
	return m
}

// engReadErr reads until an error and returns it; a data frame is a test
// failure.
func engReadErr(t *testing.T, ws *websocket.Conn) error {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(engReadTimeout))
	_, b, err := ws.ReadMessage()
	if err == nil {
		t.Fatalf("read: got frame %.300s, want the connection to end", b)
	}
	return err
}

// engSend writes one request with positional params.
func engSend(t *testing.T, ws *websocket.Conn, id int, method string, handle int, params ...any) {
	t.Helper()
	if params == nil {
		params = []any{}
	}
	engSendRaw(t, ws, map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "handle": handle, "params": params})
}

func engSendRaw(t *testing.T, ws *websocket.Conn, v any) {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	ws.SetWriteDeadline(time.Now().Add(engReadTimeout))
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// engCall sends a request and returns the next frame, which must be its
// answer.
func engCall(t *testing.T, ws *websocket.Conn, id int, method string, handle int, params ...any) map[string]any {
	t.Helper()
	engSend(t, ws, id, method, handle, params...)
	resp := engRead(t, ws)
	if got, _ := resp["id"].(float64); int(got) != id || resp["method"] != nil {
		t.Fatalf("%s: got frame %v, want the answer to id %d", method, resp, id)
	}
	return resp
}

// engGreet sends the first message (EngineVersion, id 1) on an
// authenticated socket, checks the greeting and returns qSessionState.
func engGreet(t *testing.T, ws *websocket.Conn, user string) string {
	t.Helper()
	engSend(t, ws, 1, "EngineVersion", -1)
	auth := engRead(t, ws)
	if auth["method"] != "OnAuthenticationInformation" {
		t.Fatalf("first frame = %v, want OnAuthenticationInformation", auth)
	}
	p, _ := auth["params"].(map[string]any)
	if p["mustAuthenticate"] != false || fmt.Sprint(p["userDirectory"], `\`, p["userId"]) != user {
		t.Fatalf("OnAuthenticationInformation params = %v, want %s with mustAuthenticate false", p, user)
	}
	conn := engRead(t, ws)
	if conn["method"] != "OnConnected" {
		t.Fatalf("second frame = %v, want OnConnected", conn)
	}
	state, _ := conn["params"].(map[string]any)["qSessionState"].(string)
	resp := engRead(t, ws)
	if resp["id"] != float64(1) || resp["result"] == nil {
		t.Fatalf("third frame = %v, want the EngineVersion answer", resp)
	}
	return state
}

// engClose performs the client side of the close handshake and waits for
// the server's echo, so the server has released the socket.
func engClose(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(engReadTimeout)); err != nil {
		t.Fatalf("close: %v", err)
	}
	err := engReadErr(t, ws)
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after close: %v, want the close echo", err)
	}
}

// engErrorCode returns the error code of an answer, failing if it has none.
func engErrorCode(t *testing.T, resp map[string]any) int {
	t.Helper()
	e, ok := resp["error"].(map[string]any)
	if !ok {
		t.Fatalf("answer %v has no error", resp)
	}
	return int(e["code"].(float64))
}

func engWantClose(t *testing.T, ws *websocket.Conn, code int, text string) {
	t.Helper()
	err := engReadErr(t, ws)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || ce.Text != text {
		t.Fatalf("read error = %v, want close %d %q", err, code, text)
	}
}

// engWantDrop reads and requires the connection to end without a data
// frame and without a close frame (close 1006 or a plain EOF/reset).
func engWantDrop(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	err := engReadErr(t, ws)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("read: %v, want the connection dropped", err)
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("read: close frame %d %q, want a drop without a close frame", ce.Code, ce.Text)
	}
}

func TestEngineUnauthenticated(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	host := strings.TrimPrefix(sim.ProxyURL(), "https://")
	tests := []struct {
		name, prefix, origin, cookie string
		wantLoginBase                string
	}{
		{name: "no cookie", wantLoginBase: "https://" + host + "/"},
		{name: "prefix", prefix: "ticket", wantLoginBase: "https://" + host + "/ticket/"},
		{name: "origin gives host", origin: "https://localhost:9999", wantLoginBase: "https://localhost:9999/"},
		{name: "unknown cookie", cookie: "00000000-0000-4000-8000-000000000000", wantLoginBase: "https://" + host + "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *http.Cookie
			if tt.cookie != "" {
				c = &http.Cookie{Name: DefaultCookieName, Value: tt.cookie}
			}
			var hdr []string
			if tt.origin != "" {
				hdr = []string{"Origin", tt.origin}
			}
			ws, resp, err := engDial(t, sim, tt.prefix, "/app/engineData?reloadUri=x", c, hdr...)
			if err != nil {
				t.Fatalf("dial: %v, want the upgrade to succeed without a session", err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status = %d, want 101", resp.StatusCode)
			}
			// Nothing is sent before the first message.
			ws.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, b, err := ws.ReadMessage(); err == nil {
				t.Fatalf("got %s before the first message", b)
			} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Fatalf("read before first message: %v, want a timeout", err)
			}
			// A timed-out gorilla conn cannot be read again: dial afresh.
			ws, _, err = engDial(t, sim, tt.prefix, "/app/engineData?reloadUri=x", c, hdr...)
			if err != nil {
				t.Fatal(err)
			}
			engSend(t, ws, 1, "EngineVersion", -1)
			got := engRead(t, ws)
			target := engWSURL(sim, tt.prefix, "/app/engineData?reloadUri=x")
			want := map[string]any{
				"jsonrpc": "2.0", "method": "OnAuthenticationInformation",
				"params": map[string]any{
					"loginUri":         tt.wantLoginBase + "internal_forms_authentication/?targetUri=" + url.QueryEscape(target),
					"mustAuthenticate": true,
				},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("first frame (-want +got):\n%s", diff)
			}
			// The first message is not answered and the socket is closed.
			engWantClose(t, ws, websocket.ClosePolicyViolation, "Authentication required")
		})
	}
}

func TestEngineAuthenticatedSequence(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	for _, prefix := range []string{"", "ticket"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			c := login(t, sim, prefix, `ACME\alice`)
			ws := engMustDial(t, sim, prefix, "/app/engineData", c)
			engSend(t, ws, 7, "GetAuthenticatedUser", -1)
			got := []map[string]any{engRead(t, ws), engRead(t, ws), engRead(t, ws)}
			want := []map[string]any{
				{"jsonrpc": "2.0", "method": "OnAuthenticationInformation", "params": map[string]any{
					"userId": "alice", "userDirectory": "ACME",
					"logoutUri": vpURL(sim, prefix, "/qps/user"), "mustAuthenticate": false,
				}},
				{"jsonrpc": "2.0", "method": "OnConnected", "params": map[string]any{"qSessionState": "SESSION_CREATED"}},
				{"jsonrpc": "2.0", "id": float64(7), "result": map[string]any{"qReturn": "UserDirectory=ACME; UserId=alice"}},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
			// Later messages get only their answer.
			if diff := cmp.Diff(map[string]any{"jsonrpc": "2.0", "id": float64(8), "result": map[string]any{"qVersion": map[string]any{"qComponentVersion": "12.2027.0"}}},
				engCall(t, ws, 8, "EngineVersion", -1)); diff != "" {
				t.Errorf("EngineVersion (-want +got):\n%s", diff)
			}
			if got := engCall(t, ws, 9, "ProductVersion", -1)["result"]; got == nil {
				t.Errorf("ProductVersion: no result")
			}
		})
	}
}

func TestEngineSessionAttached(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice := login(t, sim, "", `ACME\alice`)
	alice2 := login(t, sim, "", `ACME\alice`) // a second browser of the same user
	bob := login(t, sim, "", `ACME\bob`)
	app := "/app/" + engSalesID

	first := engMustDial(t, sim, "", app, alice)
	if got := engGreet(t, first, `ACME\alice`); got != "SESSION_CREATED" {
		t.Fatalf("first socket: %s, want SESSION_CREATED", got)
	}
	tests := []struct {
		name, path string
		c          *http.Cookie
		user, want string
	}{
		{"same user and app", app, alice, `ACME\alice`, "SESSION_ATTACHED"},
		{"same user, other proxy session", app, alice2, `ACME\alice`, "SESSION_ATTACHED"},
		{"app id case", "/app/" + strings.ToUpper(engSalesID), alice, `ACME\alice`, "SESSION_ATTACHED"},
		{"identity separates", app + "/identity/x", alice, `ACME\alice`, "SESSION_CREATED"},
		{"other app", "/app/" + engHandbookID, alice, `ACME\alice`, "SESSION_CREATED"},
		{"engineData", "/app/engineData", alice, `ACME\alice`, "SESSION_CREATED"},
		{"other user", app, bob, `ACME\bob`, "SESSION_CREATED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := engMustDial(t, sim, "", tt.path, tt.c)
			if got := engGreet(t, ws, tt.user); got != tt.want {
				t.Errorf("qSessionState = %s, want %s", got, tt.want)
			}
			engClose(t, ws)
		})
	}
	// Engine TTL 0: once the last socket is gone, a reconnect creates anew.
	engClose(t, first)
	again := engMustDial(t, sim, "", app, alice)
	if got := engGreet(t, again, `ACME\alice`); got != "SESSION_CREATED" {
		t.Errorf("reconnect: %s, want SESSION_CREATED", got)
	}
}

func TestEngineDocList(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	tests := []struct {
		user  string
		attrs []Attribute
		want  []string
	}{
		{user: `ACME\alice`, want: []string{"Sales Dashboard", "Company Handbook", "Alice Sandbox"}},
		{user: `ACME\bob`, want: []string{"Finance Overview", "Company Handbook"}},
		{user: `ACME\carol`, want: []string{"Sales Dashboard", "Finance Overview", "Company Handbook"}},
		{user: `ACME\dev`, want: []string{"Company Handbook"}},
		{user: `ACME\dev`, attrs: []Attribute{{"Group", "Finance"}}, want: []string{"Finance Overview", "Company Handbook"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.user, tt.attrs), func(t *testing.T) {
			ws := engMustDial(t, sim, "", "/app/engineData", login(t, sim, "", tt.user, tt.attrs...))
			engGreet(t, ws, tt.user)
			resp := engCall(t, ws, 2, "GetDocList", -1)
			list, _ := resp["result"].(map[string]any)["qDocList"].([]any)
			var titles []string
			for _, e := range list {
				titles = append(titles, e.(map[string]any)["qTitle"].(string))
			}
			if diff := cmp.Diff(tt.want, titles); diff != "" {
				t.Errorf("GetDocList titles for %s (-want +got):\n%s", tt.user, diff)
			}
		})
	}

	t.Run("entry", func(t *testing.T) {
		ws := engMustDial(t, sim, "", "/app/engineData", login(t, sim, "", `ACME\alice`))
		engGreet(t, ws, `ACME\alice`)
		resp := engCall(t, ws, 2, "GetDocList", -1)
		e := resp["result"].(map[string]any)["qDocList"].([]any)[0].(map[string]any)
		for k, want := range map[string]any{"qDocId": engSalesID, "qDocName": "Sales Dashboard", "qTitle": "Sales Dashboard", "qConnectedUsers": float64(0)} {
			if e[k] != want {
				t.Errorf("%s = %v, want %v", k, e[k], want)
			}
		}
		meta := e["qMeta"].(map[string]any)
		if meta["published"] != true || meta["stream"].(map[string]any)["name"] != "Sales" {
			t.Errorf("qMeta = %v, want published in stream Sales", meta)
		}
		if _, ok := e["qThumbnail"].(map[string]any)["qUrl"]; !ok {
			t.Errorf("qThumbnail = %v, want a qUrl", e["qThumbnail"])
		}
	})
}

func TestEngineOpenDoc(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := login(t, sim, "", `ACME\alice`)

	t.Run("errors", func(t *testing.T) {
		ws := engMustDial(t, sim, "", "/app/engineData", c)
		engGreet(t, ws, `ACME\alice`)
		tests := []struct {
			name   string
			method string
			handle int
			params []any
			want   int
		}{
			{"no active doc", "GetActiveDoc", -1, nil, 1007},
			{"forbidden app", "OpenDoc", -1, []any{engFinanceID}, 5},
			{"unknown app", "OpenDoc", -1, []any{"5a8a1b2c-9999-4c1e-9d3f-000000000009"}, 1003},
			{"doc handle before open", "GetAppLayout", 1, nil, -32602},
			{"unknown handle", "EngineVersion", 42, nil, -32602},
			{"unknown method", "NoSuchMethod", -1, nil, -32601},
			{"doc method on global", "GetScript", -1, nil, -32601},
			{"bad param type", "OpenDoc", -1, []any{12}, -32602},
		}
		for i, tt := range tests {
			if got := engErrorCode(t, engCall(t, ws, 10+i, tt.method, tt.handle, tt.params...)); got != tt.want {
				t.Errorf("%s: %s error code = %d, want %d", tt.name, tt.method, got, tt.want)
			}
		}
	})

	t.Run("open", func(t *testing.T) {
		ws := engMustDial(t, sim, "", "/app/"+engSalesID, c)
		engGreet(t, ws, `ACME\alice`)
		wantReturn := map[string]any{"qReturn": map[string]any{"qType": "Doc", "qHandle": float64(1), "qGenericId": engSalesID}}
		// enigma.js sends positional params; named ones work too.
		engSendRaw(t, ws, map[string]any{"jsonrpc": "2.0", "id": 2, "method": "OpenDoc", "handle": -1, "delta": true,
			"params": map[string]any{"qDocName": engSalesID, "qNoData": true}})
		got := engRead(t, ws)
		want := map[string]any{"jsonrpc": "2.0", "id": float64(2), "result": wantReturn, "change": []any{float64(1)}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("OpenDoc (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantReturn, engCall(t, ws, 3, "GetActiveDoc", -1)["result"]); diff != "" {
			t.Errorf("GetActiveDoc (-want +got):\n%s", diff)
		}
		if got := engErrorCode(t, engCall(t, ws, 4, "OpenDoc", -1, engSalesID)); got != 1002 {
			t.Errorf("second OpenDoc: code %d, want 1002 (LOCERR_APP_ALREADY_OPEN)", got)
		}
		if got := engErrorCode(t, engCall(t, ws, 5, "OpenDoc", -1, engHandbookID)); got != 1002 {
			t.Errorf("OpenDoc of another app: code %d, want 1002", got)
		}
		layout := engCall(t, ws, 6, "GetAppLayout", 1)["result"].(map[string]any)["qLayout"].(map[string]any)
		for k, want := range map[string]any{"qTitle": "Sales Dashboard", "qFileName": engSalesID, "qIsOpenedWithoutData": true, "qHasScript": true, "qModified": false, "qReadOnly": false} {
			if layout[k] != want {
				t.Errorf("qLayout.%s = %v, want %v", k, layout[k], want)
			}
		}
		if _, ok := layout["qLocaleInfo"].(map[string]any)["qDecimalSep"]; !ok {
			t.Errorf("qLayout.qLocaleInfo = %v, want a locale", layout["qLocaleInfo"])
		}
	})

	t.Run("owner-only app", func(t *testing.T) {
		ws := engMustDial(t, sim, "", "/app/engineData", c)
		engGreet(t, ws, `ACME\alice`)
		if resp := engCall(t, ws, 2, "OpenDoc", -1, engSandboxID, "", "", "", false); resp["error"] != nil {
			t.Errorf("alice opening her sandbox: %v", resp["error"])
		}
	})
}

func TestEngineScript(t *testing.T) {
	const size = 1 << 20
	sim, _ := newTestSim(t, func(c *Config) { c.ScriptSize = size })
	ws := engMustDial(t, sim, "", "/app/"+engSalesID, login(t, sim, "", `ACME\alice`))
	engGreet(t, ws, `ACME\alice`)
	engCall(t, ws, 2, "OpenDoc", -1, engSalesID)

	script := engCall(t, ws, 3, "GetScript", 1)["result"].(map[string]any)["qScript"].(string)
	if len(script) != size {
		t.Errorf("GetScript: %d bytes, want ScriptSize %d", len(script), size)
	}
	if again := engCall(t, ws, 4, "GetScript", 1)["result"].(map[string]any)["qScript"].(string); again != script {
		t.Errorf("GetScript is not deterministic")
	}

	// 8 MB both ways, with characters JSON must escape.
	var b strings.Builder
	for i := 0; b.Len() < 8<<20; i++ {
		fmt.Fprintf(&b, "LOAD %d AS \"n\" AutoGenerate 1; // <&> \t é\r\n", i)
	}
	big := b.String()
	if resp := engCall(t, ws, 5, "SetScript", 1, big); resp["error"] != nil {
		t.Fatalf("SetScript: %v", resp["error"])
	}
	got := engCall(t, ws, 6, "GetScript", 1)["result"].(map[string]any)["qScript"].(string)
	if got != big {
		t.Errorf("GetScript after SetScript: %d bytes, want the %d bytes sent", len(got), len(big))
	}

	// The script belongs to this socket's doc.
	other := engMustDial(t, sim, "", "/app/"+engSalesID, login(t, sim, "", `ACME\alice`))
	engGreet(t, other, `ACME\alice`)
	engCall(t, other, 2, "OpenDoc", -1, engSalesID)
	if s := engCall(t, other, 3, "GetScript", 1)["result"].(map[string]any)["qScript"].(string); s != script {
		t.Errorf("another socket sees a %d-byte script, want the app's own", len(s))
	}
}

func TestEngineTicketOnUpgrade(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	for _, param := range []string{"QlikTicket", "qlikTicket"} {
		t.Run(param, func(t *testing.T) {
			tk := ticket(t, sim, "", `ACME\alice`)
			ws, resp, err := engDial(t, sim, "", "/app/engineData?"+param+"="+tk, nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			var cookie *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == DefaultCookieName {
					cookie = c
				}
			}
			if cookie == nil || cookie.Value == "" {
				t.Fatalf("101 Set-Cookie = %q, want %s", resp.Header.Values("Set-Cookie"), DefaultCookieName)
			}
			if got := engGreet(t, ws, `ACME\alice`); got != "SESSION_CREATED" {
				t.Errorf("qSessionState = %s", got)
			}
			// The cookie is a working session on the proxy.
			r, body := proxyGet(t, sim, vpURL(sim, "", "/qps/user"), cookie)
			if r.StatusCode != http.StatusOK || !strings.Contains(body, `"userId":"alice"`) {
				t.Errorf("GET /qps/user with the 101's cookie = %d %s", r.StatusCode, body)
			}
		})
	}
}

func TestEngineOrigin(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := login(t, sim, "", `ACME\alice`)
	tests := []struct {
		origin string
		want   int
	}{
		{"https://localhost", http.StatusSwitchingProtocols},
		{"https://LOCALHOST:1234", http.StatusSwitchingProtocols},
		{"https://evil.example", http.StatusForbidden},
		{"https://localhost.evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			_, resp, err := engDial(t, sim, "", "/app/engineData", c, "Origin", tt.origin)
			if resp == nil {
				t.Fatalf("dial: %v, no response", err)
			}
			if resp.StatusCode != tt.want {
				t.Errorf("Origin %s: status %d, want %d", tt.origin, resp.StatusCode, tt.want)
			}
		})
	}
}

func TestEngineCSRF(t *testing.T) {
	sim, _ := newTestSim(t, func(c *Config) { c.WebsocketCSRF = true })
	c := login(t, sim, "", `ACME\alice`)
	r, _ := proxyGet(t, sim, vpURL(sim, "", "/qps/csrftoken"), c)
	tok := r.Header.Get("qlik-csrf-token")
	if r.StatusCode != http.StatusNoContent || tok == "" {
		t.Fatalf("GET /qps/csrftoken = %d, token %q", r.StatusCode, tok)
	}
	other := login(t, sim, "", `ACME\alice`) // a session that never fetched a token
	const origin = "https://localhost"
	path := "/app/engineData?qlik-csrf-token=" + url.QueryEscape(tok)
	tests := []struct {
		name string
		path string
		c    *http.Cookie
		hdr  []string
		want int
	}{
		{"no token", "/app/engineData", c, []string{"Origin", origin}, http.StatusForbidden},
		{"wrong token", "/app/engineData?qlik-csrf-token=x" + tok, c, []string{"Origin", origin}, http.StatusForbidden},
		{"header-only token", "/app/engineData", c, []string{"Origin", origin, "qlik-csrf-token", tok}, http.StatusForbidden},
		{"authorization header", path, c, []string{"Origin", origin, "Authorization", "Bearer x"}, http.StatusForbidden},
		{"missing origin", path, c, nil, http.StatusForbidden},
		{"origin not allowed", path, c, []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"no session", path, nil, []string{"Origin", origin}, http.StatusForbidden},
		{"token of another session", path, other, []string{"Origin", origin}, http.StatusForbidden},
		{"right token", path, c, []string{"Origin", origin}, http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := engDial(t, sim, "", tt.path, tt.c, tt.hdr...)
			if resp == nil {
				t.Fatalf("dial: %v, no response", err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if ws != nil {
				engGreet(t, ws, `ACME\alice`)
			}
		})
	}
}

func TestEngineSessionEnd(t *testing.T) {
	tests := []struct {
		name      string
		end       func(t *testing.T, sim *Sim, clock *fakeclock.Clock, c *http.Cookie, bob *websocket.Conn)
		wantTopic string
		wantText  string
	}{
		{
			name: "ExpireUser",
			end: func(t *testing.T, sim *Sim, _ *fakeclock.Clock, _ *http.Cookie, _ *websocket.Conn) {
				if n := sim.ExpireUser(`ACME\alice`); n != 1 {
					t.Errorf("ExpireUser = %d, want 1", n)
				}
			},
			wantTopic: "OnSessionTimedOut", wantText: "Session timed out due to inactivity",
		},
		{
			name: "idle timeout",
			end: func(t *testing.T, sim *Sim, clock *fakeclock.Clock, _ *http.Cookie, bob *websocket.Conn) {
				clock.Advance(DefaultSessionTimeout - 10*time.Minute)
				engCall(t, bob, 2, "EngineVersion", -1) // keeps bob's session alive
				clock.Advance(11 * time.Minute)
				if n := sim.Sweep(); n != 1 {
					t.Errorf("Sweep() = %d, want 1", n)
				}
			},
			wantTopic: "OnSessionTimedOut", wantText: "Session timed out due to inactivity",
		},
		{
			name: "logout",
			end: func(t *testing.T, sim *Sim, _ *fakeclock.Clock, c *http.Cookie, _ *websocket.Conn) {
				if r, _ := proxyDo(t, sim, "DELETE", vpURL(sim, "", "/qps/user"), c); r.StatusCode != http.StatusOK {
					t.Errorf("logout: %d", r.StatusCode)
				}
			},
			wantTopic: "OnSessionLoggedOut", wantText: "User logged out manually",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, clock := newTestSim(t, nil)
			c := login(t, sim, "", `ACME\alice`)
			bob := engMustDial(t, sim, "", "/app/engineData", login(t, sim, "", `ACME\bob`))
			engGreet(t, bob, `ACME\bob`)
			ws := engMustDial(t, sim, "", "/app/engineData", c)
			engGreet(t, ws, `ACME\alice`)
			tt.end(t, sim, clock, c, bob)
			got := engRead(t, ws)
			p, _ := got["params"].(map[string]any)
			if got["method"] != tt.wantTopic || p["severity"] != "fatal" || p["message"] != tt.wantText {
				t.Errorf("frame = %v, want %s fatal %q", got, tt.wantTopic, tt.wantText)
			}
			if _, err := time.Parse(time.RFC3339, fmt.Sprint(p["timestamp"])); err != nil {
				t.Errorf("timestamp %v: %v", p["timestamp"], err)
			}
			if _, ok := got["id"]; ok {
				t.Errorf("notification %v has an id", got)
			}
			engWantClose(t, ws, websocket.CloseNormalClosure, tt.wantText)
			// Other users' sockets are untouched.
			engCall(t, bob, 3, "EngineVersion", -1)
		})
	}
}

func TestEngineIdleTimerResetByMessages(t *testing.T) {
	sim, clock := newTestSim(t, nil)
	ws := engMustDial(t, sim, "", "/app/engineData", login(t, sim, "", `ACME\alice`))
	engGreet(t, ws, `ACME\alice`)
	for i := range 3 {
		clock.Advance(DefaultSessionTimeout - time.Minute)
		if n := sim.Sweep(); n != 0 {
			t.Fatalf("round %d: Sweep() = %d, want 0 while messages flow", i, n)
		}
		engCall(t, ws, 10+i, "EngineVersion", -1)
	}
	// Pings do not count. The server has handled the ping once its pong
	// arrives; the reader goroutine sees the pong, then the notification.
	clock.Advance(DefaultSessionTimeout - time.Minute)
	pong := make(chan struct{}, 1)
	ws.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
	type frame struct {
		b   []byte
		err error
	}
	frames := make(chan frame, 1)
	go func() {
		ws.SetReadDeadline(time.Now().Add(engReadTimeout))
		_, b, err := ws.ReadMessage()
		frames <- frame{b, err}
	}()
	if err := ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(engReadTimeout)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pong:
	case f := <-frames:
		t.Fatalf("before the pong: frame %s, err %v", f.b, f.err)
	}
	clock.Advance(2 * time.Minute)
	if n := sim.Sweep(); n != 1 {
		t.Errorf("Sweep() = %d, want 1: a ping must not reset the idle timer", n)
	}
	f := <-frames
	if f.err != nil || !strings.Contains(string(f.b), `"method":"OnSessionTimedOut"`) {
		t.Fatalf("frame %s, err %v, want OnSessionTimedOut", f.b, f.err)
	}
}

func TestEngineExpireAllDrops(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	ws := engMustDial(t, sim, "", "/app/engineData", login(t, sim, "", `ACME\alice`))
	engGreet(t, ws, `ACME\alice`)
	sim.ExpireAll()
	engWantDrop(t, ws)
}

func TestEngineInvalidJSON(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	ws := engMustDial(t, sim, "", "/app/engineData", login(t, sim, "", `ACME\alice`))
	engGreet(t, ws, `ACME\alice`)
	engSendRaw(t, ws, []byte(`{"jsonrpc":"2.0","id":2,"method":`))
	got := engRead(t, ws)
	want := map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": float64(-32700), "parameter": "", "message": "Parse error"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("invalid JSON answer (-want +got):\n%s", diff)
	}
	if resp := engCall(t, ws, 3, "GetAuthenticatedUser", -1); resp["error"] != nil {
		t.Errorf("after a parse error: %v", resp)
	}
}

func TestEngineInvalidJSONFirst(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	ws := engMustDial(t, sim, "", "/app/engineData", login(t, sim, "", `ACME\alice`))
	engSendRaw(t, ws, []byte(`not json`))
	for _, want := range []string{"OnAuthenticationInformation", "OnConnected"} {
		if got := engRead(t, ws); got["method"] != want {
			t.Fatalf("frame %v, want %s", got, want)
		}
	}
	if code := engErrorCode(t, engRead(t, ws)); code != -32700 {
		t.Errorf("code %d, want -32700", code)
	}
}

func TestEngineEvents(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	socks := map[string]*websocket.Conn{}
	for _, u := range []string{`ACME\alice`, `ACME\bob`} {
		socks[u] = engMustDial(t, sim, "", "/app/engineData", login(t, sim, "", u))
		engGreet(t, socks[u], u)
	}
	for i := range 4 {
		for u, ws := range socks {
			engSendRaw(t, ws, map[string]any{"jsonrpc": "2.0", "id": 10 + i, "method": "GetDocList", "handle": -1, "params": []any{}, "tag": fmt.Sprintf("%s#%d", u, i)})
			engRead(t, ws)
		}
	}
	unauth := engMustDial(t, sim, "", "/app/engineData", nil)
	engSendRaw(t, unauth, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "EngineVersion", "handle": -1, "tag": "anonymous"})
	engRead(t, unauth)
	engWantClose(t, unauth, websocket.ClosePolicyViolation, "Authentication required")

	tagged := 0
	opens := map[string]int{}
	for _, e := range sim.Events(0) {
		switch e.Kind {
		case "ws-open":
			opens[e.User]++
		case "ws":
			if e.Tag == "" {
				if e.Method != "EngineVersion" {
					t.Errorf("untagged ws event %+v", e)
				}
				continue
			}
			tagged++
			want, _, _ := strings.Cut(e.Tag, "#")
			if e.Tag == "anonymous" {
				want = ""
			}
			if e.User != want || e.Path != "/app/engineData" {
				t.Errorf("event %+v ran as %q, want %q", e, e.User, want)
			}
			if want != "" && e.SessionID == "" {
				t.Errorf("event %+v has no session id", e)
			}
		}
	}
	if tagged != 9 {
		t.Errorf("%d tagged ws events, want 9", tagged)
	}
	if diff := cmp.Diff(map[string]int{`ACME\alice`: 1, `ACME\bob`: 1, "": 1}, opens); diff != "" {
		t.Errorf("ws-open events per user (-want +got):\n%s", diff)
	}
}

func TestEngineShutdownClosesSockets(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	ws := engMustDial(t, sim, "", "/app/engineData", login(t, sim, "", `ACME\alice`))
	engGreet(t, ws, `ACME\alice`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sim.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	err := engReadErr(t, ws)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("read after Shutdown: %v, want the socket closed", err)
	}
}

// engNewLoggedSim is newTestSim with an observed logger.
func engNewLoggedSim(t *testing.T, mutate func(*Config)) (*Sim, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	return startTestSim(t, mutate, Options{Clock: fakeclock.New(), SweepInterval: -1, Logger: zap.New(core)}), logs
}

func TestEngineCSRFLog(t *testing.T) {
	sim, logs := engNewLoggedSim(t, func(c *Config) { c.WebsocketCSRF = true })
	c := login(t, sim, "", `ACME\alice`)
	const secret = "Bearer s3cr3t-token-value"
	_, resp, _ := engDial(t, sim, "", "/app/engineData", c, "Origin", "https://localhost", "Authorization", secret)
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upgrade with Authorization: %v, want 403", resp)
	}
	entries := logs.FilterMessage("cross-site websocket hijacking attack prevention check failed").All()
	if len(entries) != 1 {
		t.Fatalf("%d log entries for the refusal, want 1; all: %v", len(entries), logs.All())
	}
	if entries[0].Level != zap.InfoLevel {
		t.Errorf("level %v, want info", entries[0].Level)
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), "s3cr3t") {
			t.Errorf("log entry %q %v contains the Authorization value", e.Message, e.ContextMap())
		}
	}
	// Only these refusals count: a bad Origin without CSRF is logged apart.
	if n := len(logs.FilterMessage("websocket origin not on the host allow list").All()); n != 0 {
		t.Errorf("%d origin log entries, want 0", n)
	}
}
