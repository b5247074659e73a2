package main

import "testing"

func TestAnswerID(t *testing.T) {
	tests := []struct {
		msg      string
		id       int64
		rest     string
		isAnswer bool
	}{
		{`{"jsonrpc":"2.0","id":42,"result":{"qScript":"x"}}`, 42, `,"result":{"qScript":"x"}}`, true},
		{`{"jsonrpc":"2.0","id":7,"error":{"code":-32601}}`, 7, `,"error":{"code":-32601}}`, true},
		{`{"jsonrpc":"2.0","method":"OnConnected","params":{"qSessionState":"SESSION_CREATED"}}`, 0, "", false},
		{`{"jsonrpc":"2.0","method":"OnAuthenticationInformation","params":{"userId":"bench"}}`, 0, "", false},
		{`{"jsonrpc":"2.0","id":null,"error":{}}`, 0, "", false},
	}
	for _, tt := range tests {
		id, rest, ok := answerID([]byte(tt.msg))
		if ok != tt.isAnswer || id != tt.id || string(rest) != tt.rest {
			t.Errorf("answerID(%s) = %d, %q, %v; want %d, %q, %v", tt.msg, id, rest, ok, tt.id, tt.rest, tt.isAnswer)
		}
	}
}

func TestAppOf(t *testing.T) {
	if app, err := appOf("ws://127.0.0.1:1/app/5a8a1b2c-0003-4c1e-9d3f-000000000003"); err != nil || app != "5a8a1b2c-0003-4c1e-9d3f-000000000003" {
		t.Errorf("appOf(…/app/ID) = %q, %v", app, err)
	}
	for _, u := range []string{"ws://127.0.0.1:1/app/engineData", "ws://127.0.0.1:1/hub/"} {
		if _, err := appOf(u); err == nil {
			t.Errorf("appOf(%q): nil error, want one (no app id)", u)
		}
	}
}
