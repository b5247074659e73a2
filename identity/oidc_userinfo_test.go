package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// keepGroupsOut makes the OP leave groups out of clientID's ID tokens
// (userinfo still has them), as providers with many groups do.
func keepGroupsOut(o *testOP, clientID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.clients[clientID]
	c.GroupsInUserinfoOnly = true
	o.clients[clientID] = c
	if err := o.idp.SetClient(c); err != nil {
		panic(err)
	}
}

// userinfoSpy is the RPs' client of an OP that counts userinfo requests
// and lets a test rewrite or fail the answers.
type userinfoSpy struct {
	o *testOP

	mu      sync.Mutex
	calls   int
	rewrite func(claims map[string]any) // nil: the OP's answer
	status  int                         // not 0: answered instead of the OP
	noEndpt bool                        // discovery without userinfo_endpoint
}

func (s *userinfoSpy) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		s.mu.Lock()
		rewrite, status, noEndpt := s.rewrite, s.status, s.noEndpt
		isUserinfo := strings.HasSuffix(r.URL.Path, "/userinfo")
		if isUserinfo {
			s.calls++
		}
		s.mu.Unlock()
		if isUserinfo && status != 0 {
			return &http.Response{StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{}, Body: io.NopCloser(strings.NewReader("down")), Request: r}, nil
		}
		resp, err := s.o.RoundTrip(r)
		discovery := strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration")
		if err != nil || !(isUserinfo && rewrite != nil || discovery && noEndpt) {
			return resp, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, err
		}
		if discovery {
			delete(m, "userinfo_endpoint")
		} else {
			rewrite(m)
		}
		body, _ = json.Marshal(m)
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		resp.Header.Del("Content-Length")
		return resp, nil
	})}
}

func (s *userinfoSpy) set(f func(*userinfoSpy)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *userinfoSpy) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// newUserinfoRP starts an RP with userinfo on (and offline_access) at an
// OP that keeps groups out of ID tokens.
func newUserinfoRP(t *testing.T, userinfo bool) (*testRP, *userinfoSpy) {
	t.Helper()
	o := newTestOP(t)
	spy := &userinfoSpy{o: o}
	rp := newTestRP(t, o, "sensegate", func(c *OIDCConfig) {
		c.Userinfo, c.HTTPClient = userinfo, spy.client()
		c.Scopes = []string{"profile", "email", "offline_access"}
	})
	keepGroupsOut(o, "sensegate")
	return rp, spy
}

// Issue 18: with a provider that keeps groups out of ID tokens, users
// lost their Qlik groups; identity.oidc.userinfo reads them from the
// UserInfo endpoint at sign-in and at every refresh.
func TestOIDCUserinfo(t *testing.T) {
	t.Run("without userinfo the groups are missing", func(t *testing.T) {
		rp, spy := newUserinfoRP(t, false)
		rp.browser.signIn(t, rp.srv.URL+"/sense/app/1")
		if u := rp.session(t).User; len(u.Attributes) != 1 || u.Attributes[0].Key != "email" || spy.count() != 0 {
			t.Errorf("user without userinfo = %v (userinfo calls %d), want no groups: the OP keeps them out of the ID token", u, spy.count())
		}
	})

	rp, spy := newUserinfoRP(t, true)
	signedIn(t, rp) // wantUser, groups included
	if n := spy.count(); n != 1 {
		t.Errorf("userinfo calls at sign-in = %d, want 1", n)
	}

	// A refresh with a new ID token reads userinfo again. (The OP keeps
	// the real time: its new ID tokens outlive the jump by an hour.)
	rp.op.setIDTokenLifetime(3 * time.Hour)
	rp.clock.Advance(2 * time.Hour)
	u, err := rp.o.Identify(rp.request("/"))
	if diff := cmp.Diff(wantUser, u); err != nil || diff != "" {
		t.Errorf("Identify after a refresh = %v (-want +got):\n%s", err, diff)
	}
	if n, r := spy.count(), rp.op.grantCount("refresh_token"); n != 2 || r != 1 {
		t.Errorf("after a refresh: userinfo calls %d, refreshes %d; want 2 and 1", n, r)
	}

	// A refresh without a new ID token maps the stored one's claims with
	// userinfo's.
	rp.op.setTokenHook(func(grant string, resp map[string]any) {
		if grant == "refresh_token" {
			delete(resp, "id_token")
			resp["expires_in"] = 3600
		}
	})
	rp.clock.Advance(2 * time.Hour)
	u, err = rp.o.Identify(rp.request("/"))
	if diff := cmp.Diff(wantUser, u); err != nil || diff != "" {
		t.Errorf("Identify after a refresh without an ID token = %v (-want +got):\n%s", err, diff)
	}
	if n, r := spy.count(), rp.op.grantCount("refresh_token"); n != 3 || r != 2 {
		t.Errorf("after a refresh without an ID token: userinfo calls %d, refreshes %d; want 3 and 2", n, r)
	}
}

// OIDC Core 5.3.2: a UserInfo answer about another subject must not be
// used: the sign-in is refused, a refresh ends the login.
func TestOIDCUserinfoOtherSubject(t *testing.T) {
	otherSub := func(m map[string]any) { m["sub"], m["groups"] = "someone-else", []string{"admins"} }
	t.Run("sign-in", func(t *testing.T) {
		rp, spy := newUserinfoRP(t, true)
		spy.set(func(s *userinfoSpy) { s.rewrite = otherSub })
		resp, body := rp.browser.signIn(t, rp.srv.URL+"/sense/app/1")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "does not belong to this sign-in") || rp.store.len() != 0 {
			t.Errorf("sign-in = %d %q with %d stored, want 403 and no session", resp.StatusCode, body, rp.store.len())
		}
	})
	t.Run("refresh", func(t *testing.T) {
		rp, spy := newUserinfoRP(t, true)
		signedIn(t, rp)
		spy.set(func(s *userinfoSpy) { s.rewrite = otherSub })
		rp.op.setIDTokenLifetime(48 * time.Hour)
		rp.clock.Advance(2 * time.Hour)
		wantNotSignedIn(t, rp, rp.request("/sense/app/1"))
		if rp.store.len() != 0 || !strings.Contains(rp.logText(), "userinfo names another subject") {
			t.Errorf("after a refresh with another subject's userinfo: %d stored, log:\n%s", rp.store.len(), rp.logText())
		}
	})
}

// A UserInfo endpoint that fails: the sign-in is refused for now; a
// refresh keeps the login (and the rotated refresh token) for the next
// request to try again.
func TestOIDCUserinfoUnavailable(t *testing.T) {
	t.Run("sign-in", func(t *testing.T) {
		rp, spy := newUserinfoRP(t, true)
		spy.set(func(s *userinfoSpy) { s.status = http.StatusInternalServerError })
		resp, body := rp.browser.signIn(t, rp.srv.URL+"/sense/app/1")
		if resp.StatusCode != http.StatusServiceUnavailable || rp.store.len() != 0 {
			t.Errorf("sign-in = %d %q with %d stored, want 503 and no session", resp.StatusCode, body, rp.store.len())
		}
	})
	t.Run("refresh", func(t *testing.T) {
		rp, spy := newUserinfoRP(t, true)
		signedIn(t, rp)
		spy.set(func(s *userinfoSpy) { s.status = http.StatusBadGateway })
		rp.op.setIDTokenLifetime(48 * time.Hour)
		rp.clock.Advance(2 * time.Hour)
		_, err := rp.o.Identify(rp.request("/"))
		var ie *Error
		if err == nil || errors.As(err, &ie) {
			t.Fatalf("Identify while userinfo fails = %v, want a plain error (503)", err)
		}
		spy.set(func(s *userinfoSpy) { s.status = 0 })
		u, err := rp.o.Identify(rp.request("/"))
		if diff := cmp.Diff(wantUser, u); err != nil || diff != "" {
			t.Errorf("Identify once userinfo is back = %v (-want +got):\n%s", err, diff)
		}
		// The second refresh used the token the first one rotated.
		if r := rp.op.grantCount("refresh_token"); r != 2 {
			t.Errorf("refreshes = %d, want 2", r)
		}
	})
}

func TestOIDCUserinfoNeedsEndpoint(t *testing.T) {
	o := newTestOP(t)
	spy := &userinfoSpy{o: o, noEndpt: true}
	_, err := NewOIDC(context.Background(), OIDCConfig{
		Issuer: o.issuer, ClientID: "sensegate", RedirectURL: "https://sensegate.example.com/.sensegate/callback",
		Mapping: testMapping(t), Sessions: NewMemorySessions(nil), CookieKeys: [][]byte{randomKey()},
		HTTPClient: spy.client(), Userinfo: true,
	})
	if err == nil || !strings.Contains(err.Error(), "no userinfo_endpoint") {
		t.Errorf("NewOIDC with Userinfo at a provider without the endpoint = %v", err)
	}
}

func TestMergeClaims(t *testing.T) {
	id := map[string]any{"sub": "1", "email": "id@example.com", "groups": []any{}, "roles": []any{"a"}}
	ui := map[string]any{"sub": "1", "email": "ui@example.com", "groups": []any{"sales"}, "roles": []any{"b"}, "department": "eu"}
	tests := []struct {
		name   string
		id     map[string]any
		groups string
		want   map[string]any
	}{
		{"empty groups come from userinfo", id, "groups", map[string]any{"sub": "1", "email": "id@example.com", "groups": []any{"sales"}, "roles": []any{"a"}, "department": "eu"}},
		{"another groups claim", id, "roles", map[string]any{"sub": "1", "email": "id@example.com", "groups": []any{}, "roles": []any{"a"}, "department": "eu"}},
		{"no groups claim", id, "", map[string]any{"sub": "1", "email": "id@example.com", "groups": []any{}, "roles": []any{"a"}, "department": "eu"}},
		{"missing groups come from userinfo", map[string]any{"sub": "1"}, "groups", map[string]any{"sub": "1", "email": "ui@example.com", "groups": []any{"sales"}, "roles": []any{"b"}, "department": "eu"}},
		{"the id token's groups win", map[string]any{"sub": "1", "groups": "x"}, "groups", map[string]any{"sub": "1", "email": "ui@example.com", "groups": "x", "roles": []any{"b"}, "department": "eu"}},
	}
	for _, tt := range tests {
		got := mergeClaims(tt.id, ui, tt.groups)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: mergeClaims (-want +got):\n%s", tt.name, diff)
		}
	}
	if len(id["groups"].([]any)) != 0 {
		t.Error("mergeClaims changed its input")
	}
}
