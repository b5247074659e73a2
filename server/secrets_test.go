package server

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// A whole run at debug level — logins, QRS, websockets, a Qlik restart with
// recovery, client-sent credentials, logout — logs no session cookie, no
// key material and nothing the client sent as a credential.
func TestLogsCarryNoSecrets(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	cfg, err := config.Load(sensegatetest.WriteConfig(t, sim, "log:\n  level: debug\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Everything logged, as JSON lines, at debug level.
	out := &sensegatetest.SyncBuffer{}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(out), zapcore.DebugLevel))
	addr := runServer(t, cfg, log, nil)

	const clientSecret = "client-sent-secret-0123456789"
	get := func(user, path string, hdr ...string) {
		t.Helper()
		sensegatetest.Get(t, "http://"+addr+path, append([]string{"X-Forwarded-User", user}, hdr...)...)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		get(u, "/hub/", "Cookie", "X-Qlik-Session="+clientSecret, "Authorization", "Bearer "+clientSecret)
		get(u, "/qrs/reloadtask?xrfkey=abcdefghijklmnop&qlikTicket="+clientSecret, "X-Qlik-Xrfkey", "abcdefghijklmnop")
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/engineData", http.Header{"X-Forwarded-User": {u}})
		if err != nil {
			t.Fatal(err)
		}
		ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "OpenDoc", "handle": -1, "params": []any{"5a8a1b2c-0003-4c1e-9d3f-000000000003"}})
		for i := 0; i < 3; i++ {
			ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := ws.ReadMessage(); err != nil {
				t.Fatal(err)
			}
		}
		ws.Close()
	}
	sim.ExpireAll()
	get("alice", "/hub/")   // recovered with a new session
	get("/nobody", "/hub/") // refused identity
	get("bob", "/nowhere")  // 404
	req, _ := http.NewRequest("POST", "http://"+addr+"/.sensegate/logout", nil)
	req.Header.Set("X-Forwarded-User", "carol")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	log.Sync()

	logs := out.String()
	if !strings.Contains(logs, `ACME\\alice`) {
		t.Fatalf("the run logged no user ids: the capture is broken:\n%s", logs)
	}
	var secrets []string
	for _, ev := range sim.Events(0) {
		if ev.SessionID != "" {
			secrets = append(secrets, ev.SessionID) // every Qlik session cookie value of the run
		}
	}
	if len(secrets) == 0 {
		t.Fatal("no Qlik sessions seen")
	}
	secrets = append(secrets, clientSecret)
	for _, f := range []string{sim.Certs().ClientKey, sim.Certs().ServerKey} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) > 40 && !strings.HasPrefix(line, "-----") {
				secrets = append(secrets, line) // key material
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain a secret %q", fmt.Sprintf("%.8s…", s))
		}
	}
}
