package sensegatetest

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// DialEngine opens an Engine websocket through sensegate at addr as user
// (in X-Forwarded-User, the header identity's default), closed when t
// ends, and waits for the answer to EngineVersion (id 1), which follows
// OnAuthenticationInformation and OnConnected.
func DialEngine(t testing.TB, addr, user string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/engineData", http.Header{"X-Forwarded-User": {user}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	EngineVersion(t, ws, 1, 3)
	return ws
}

// EngineVersion asks ws for EngineVersion with id and requires its answer
// within the next frames frames, each within 10 s.
func EngineVersion(t testing.TB, ws *websocket.Conn, id, frames int) {
	t.Helper()
	if err := ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": id, "method": "EngineVersion", "handle": -1, "params": []any{}}); err != nil {
		t.Fatal(err)
	}
	for range frames {
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var m struct {
			ID int `json:"id"`
		}
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("EngineVersion %d: %v", id, err)
		}
		if m.ID == id {
			return
		}
	}
	t.Fatalf("EngineVersion %d: no answer", id)
}
