package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

// Issue 14: identities that Unicode case mapping, or the old key's
// "#<digest>" suffix, made look alike were served with one another's Qlik
// session. Each must run, at the simulator, as itself, on a session made
// from a ticket of its own, and keep that session.
func TestLookAlikeIdentitiesGetTheirOwnSessions(t *testing.T) {
	e := newEnv(t, withGroupsHeader)
	type who struct {
		name, user, groups string
		// wantID is the user id Qlik must see, wantGroups its Group attributes.
		wantID, wantGroups string
	}
	ids := []who{
		{"alice", "alice", "", "alice", ""},
		{"dotted capital I", "al\u0130ce", "", "al\u0130ce", ""},
		{"kim", "kim", "", "kim", ""},
		{"Kelvin sign", "\u212aim", "", "\u212aim", ""},
		{"directory ACMES", `ACMES\bob`, "", "bob", ""},
		{"directory with long s", "ACME\u017f\\bob", "", "bob", ""},
		{"alice in Sales", "alice", "Sales", "alice", "Sales"},
		{"alice's old key suffix as an id", "alice#" + oldKeyDigest("Group", "Sales"), "", "alice#" + oldKeyDigest("Group", "Sales"), ""},
	}
	sessionOf := map[string]string{} // tag → Qlik session id
	for round := range 2 {
		for i, w := range ids {
			tag := "id" + strconv.Itoa(i) + "-" + strconv.Itoa(round)
			resp, body := e.do(t, "GET", "/qrs/app?xrfkey="+xrf, w.user, "X-Qlik-Xrfkey", xrf, "X-Sim-Tag", tag, "X-Forwarded-Groups", w.groups)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s, round %d: GET /qrs/app = %d %q", w.name, round, resp.StatusCode, body)
			}
		}
	}
	for _, ev := range e.sim.Events(0) {
		if ev.Kind == "http" && ev.Tag != "" {
			sessionOf[ev.Tag] = ev.SessionID
		}
	}
	sessions := map[string]qliksim.SessionInfo{}
	for _, s := range e.sim.Sessions() {
		sessions[s.ID] = s
	}
	owner := map[string]string{} // Qlik session id → identity
	for i, w := range ids {
		first, second := sessionOf["id"+strconv.Itoa(i)+"-0"], sessionOf["id"+strconv.Itoa(i)+"-1"]
		if first == "" || first != second {
			t.Errorf("%s ran on Qlik sessions %q then %q, want one session kept in the jar", w.name, first, second)
			continue
		}
		if o, dup := owner[first]; dup {
			t.Errorf("%s and %s share the Qlik session %s", o, w.name, first)
		}
		owner[first] = w.name
		s, ok := sessions[first]
		if !ok {
			t.Errorf("%s: Qlik session %s not live", w.name, first)
			continue
		}
		var groups []string
		for _, a := range s.Attributes {
			groups = append(groups, a.Value)
		}
		if s.User.ID != w.wantID || strings.Join(groups, ",") != w.wantGroups {
			t.Errorf("%s ran at Qlik as %q with groups %q, want %q with %q", w.name, s.User.ID, groups, w.wantID, w.wantGroups)
		}
	}
	if got := e.sim.TicketsIssued(); got != len(ids) {
		t.Errorf("tickets issued = %d, want %d: one per identity", got, len(ids))
	}
}

// Issue 14: logging out one identity of a pair that shared the old key
// dropped the other's session and closed their websockets. Each pair here
// is one Qlik itself keeps apart (the ids differ in ASCII; or the
// simulator folds ASCII only, a reading of Qlik's comparison), so what is
// left of alice's session is sensegate's doing alone.
func TestLogoutLeavesLookAlikeAlone(t *testing.T) {
	for _, tt := range []struct {
		name, other, userCase string
	}{
		{"old key suffix as an id", "alice#" + oldKeyDigest("Group", "Sales"), ""},
		{"dotted capital I", "al\u0130ce", qliksim.UserCaseASCII},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withGroupsHeader, func(c *qliksim.Config, _ *Options) { c.UserCase = tt.userCase })
			hdr := http.Header{"X-Forwarded-Groups": {"Sales"}}
			alice, _, err := e.dialEngine(t, "/app/engineData", "alice", hdr)
			if err != nil {
				t.Fatal(err)
			}
			call(t, alice, 1, "EngineVersion", -1, "")
			if resp, _ := e.do(t, "GET", "/hub/", tt.other); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /hub/ as %s = %d", tt.other, resp.StatusCode)
			}
			tickets := e.sim.TicketsIssued()
			if resp, body := e.do(t, "POST", "/.sensegate/logout", tt.other); resp.StatusCode != http.StatusOK {
				t.Fatalf("logout = %d %q", resp.StatusCode, body)
			}
			if ans, _ := call(t, alice, 2, "EngineVersion", -1, ""); ans.Error != nil {
				t.Errorf("alice's socket after the look-alike's logout: %+v", ans.Error)
			}
			if resp, _ := e.do(t, "GET", "/hub/", "alice", "X-Forwarded-Groups", "Sales"); resp.StatusCode != http.StatusOK {
				t.Errorf("alice's GET after the look-alike's logout = %d", resp.StatusCode)
			}
			if got := e.sim.TicketsIssued() - tickets; got != 0 {
				t.Errorf("tickets after the look-alike's logout = %d, want 0: alice's session was dropped", got)
			}
			if n := e.sim.Counts(`ACME\alice`).LiveSessions; n != 1 {
				t.Errorf("alice's live Qlik sessions = %d, want 1", n)
			}
		})
	}
}

// withGroupsHeader identifies users by X-Forwarded-User in ACME, with
// their groups in X-Forwarded-Groups (loopback is trusted).
func withGroupsHeader(_ *qliksim.Config, o *Options) {
	o.Identity = identity.NewHeader(identity.HeaderOptions{
		Name: "X-Forwarded-User", GroupsHeader: "X-Forwarded-Groups", DefaultDirectory: "ACME",
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	})
}

// oldKeyDigest is the attribute suffix of the user key before issue 14
// for one attribute: 16 hex digits of SHA-256("key\x00value").
func oldKeyDigest(key, value string) string {
	h := sha256.Sum256([]byte(key + "\x00" + value))
	return hex.EncodeToString(h[:8])
}
