package devlogin

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/identity"
)

// The development login's cookie, set and cleared, is HttpOnly,
// SameSite=Lax, host-only, on every path, and Secure when asked (HTTPS).
func TestDevLoginCookieFlags(t *testing.T) {
	for _, secure := range []bool{true, false} {
		d := New([]identity.User{{Directory: "ACME", ID: "alice"}}, secure)
		mux := http.NewServeMux()
		d.Mount(mux, "/.sensegate/")

		r := httptest.NewRequest("POST", "/.sensegate/login", strings.NewReader(url.Values{"user": {`ACME\alice`}, "rd": {"/hub/"}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/hub/" {
			t.Fatalf("login = %d to %q, want 303 to /hub/", w.Code, w.Header().Get("Location"))
		}
		set := w.Result().Cookies()

		r = httptest.NewRequest("POST", "/.sensegate/logout", nil)
		for _, c := range set {
			r.AddCookie(c)
		}
		if u, err := d.Identify(r); err != nil || u.ID != "alice" {
			t.Fatalf("Identify with the login cookie = %v, %v", u, err)
		}
		w = httptest.NewRecorder()
		d.Logout(w, r)
		cleared := w.Result().Cookies()
		if len(set) != 1 || len(cleared) != 1 || cleared[0].MaxAge >= 0 {
			t.Fatalf("cookies set %v and cleared %v, want one each", set, cleared)
		}
		for _, c := range []*http.Cookie{set[0], cleared[0]} {
			if !c.HttpOnly || c.Secure != secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
				t.Errorf("cookie %s (secure %v): HttpOnly %v, Secure %v, SameSite %v, Path %q, Domain %q; want HttpOnly, Secure %v, SameSite=Lax, Path /, no Domain",
					c.Name, secure, c.HttpOnly, c.Secure, c.SameSite, c.Path, c.Domain, secure)
			}
		}
	}
}

// The login form's body is bounded.
func TestDevLoginFormLimit(t *testing.T) {
	d := New([]identity.User{{Directory: "ACME", ID: "alice"}}, false)
	mux := http.NewServeMux()
	d.Mount(mux, "/.sensegate/")
	r := httptest.NewRequest("POST", "/.sensegate/login", strings.NewReader("user="+strings.Repeat("a", maxLoginForm)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || len(w.Result().Cookies()) != 0 {
		t.Errorf("login form over %d bytes = %d with cookies %v, want 413 and none", maxLoginForm, w.Code, w.Result().Cookies())
	}
}
