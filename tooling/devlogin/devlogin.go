// Package devlogin is the demo's development login: a page where the
// visitor picks a user, without a password. It is a development tool,
// not part of the sensegate binary.
package devlogin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/sensegate/sensegate/identity"
)

// devCookie is the DevLogin session cookie.
const devCookie = "sensegate_dev_user"

// DevLogin is the demo's identity provider: a page where the visitor picks
// one of a fixed list of users, remembered in an HMAC-signed cookie. It
// has no passwords and is for demos and development only.
type DevLogin struct {
	users  []identity.User
	key    []byte
	secure bool
	prefix string // set by Mount
}

// New returns a DevLogin offering users. The signing key is random
// per process, so restarting signs everyone out. secure marks the cookie
// Secure (for HTTPS).
func New(users []identity.User, secure bool) *DevLogin {
	key := make([]byte, 32)
	rand.Read(key)
	return &DevLogin{users: users, key: key, secure: secure, prefix: "/.sensegate/"}
}

// Identify implements Provider.
func (d *DevLogin) Identify(r *http.Request) (identity.User, error) {
	c, err := r.Cookie(devCookie)
	if err == nil {
		if u, ok := d.verify(c.Value); ok {
			return u, nil
		}
	}
	return identity.User{}, &identity.Error{Status: http.StatusUnauthorized, Msg: "not signed in", Err: identity.ErrNoIdentity, LoginURL: d.prefix + "login?rd=" + url.QueryEscape(r.URL.RequestURI())}
}

func (d *DevLogin) sign(u identity.User) string {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(u.String()))
	return base64.RawURLEncoding.EncodeToString([]byte(u.String())) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (d *DevLogin) verify(v string) (identity.User, bool) {
	name, sig, ok := strings.Cut(v, ".")
	if !ok {
		return identity.User{}, false
	}
	raw, err1 := base64.RawURLEncoding.DecodeString(name)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return identity.User{}, false
	}
	m := hmac.New(sha256.New, d.key)
	m.Write(raw)
	if !hmac.Equal(mac, m.Sum(nil)) {
		return identity.User{}, false
	}
	return d.find(string(raw))
}

func (d *DevLogin) find(name string) (identity.User, bool) {
	for _, u := range d.users {
		if strings.EqualFold(u.String(), name) {
			return u, true
		}
	}
	return identity.User{}, false
}

// Mount implements Mounter: GET and POST {prefix}login.
func (d *DevLogin) Mount(mux *http.ServeMux, prefix string) {
	d.prefix = prefix
	mux.HandleFunc("GET "+prefix+"login", d.page)
	mux.HandleFunc("POST "+prefix+"login", d.login)
}

var devPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sensegate demo: sign in</title>
<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto}button{display:block;width:100%;margin:.5rem 0;padding:.7rem;font-size:1rem}</style></head>
<body><h1>sensegate demo</h1><p>Sign in as one of the simulator's users. (Development login: no passwords.)</p>
<form method="post">{{range .Users}}<button name="user" value="{{.}}">{{.}}</button>{{end}}
<input type="hidden" name="rd" value="{{.Redirect}}"></form></body></html>
`))

func (d *DevLogin) page(w http.ResponseWriter, r *http.Request) {
	names := make([]string, len(d.users))
	for i, u := range d.users {
		names[i] = u.String()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	devPage.Execute(w, struct {
		Users    []string
		Redirect string
	}{names, identity.SafeRedirect(r.URL.Query().Get("rd"))})
}

// maxLoginForm bounds the login form's body: a user name and a path.
const maxLoginForm = 16 << 10

func (d *DevLogin) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("login form larger than %d bytes", maxLoginForm), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "unreadable login form", http.StatusBadRequest)
		return
	}
	u, ok := d.find(r.PostFormValue("user"))
	if !ok {
		http.Error(w, fmt.Sprintf("unknown user %q", r.PostFormValue("user")), http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: devCookie, Value: d.sign(u), Path: "/", HttpOnly: true, Secure: d.secure, SameSite: http.SameSiteLaxMode, MaxAge: 8 * 3600})
	http.Redirect(w, r, identity.SafeRedirect(r.PostFormValue("rd")), http.StatusSeeOther)
}

// StripCookies implements CookieStripper.
func (d *DevLogin) StripCookies() []string { return []string{devCookie} }

// Logout implements Logouter: it expires the login cookie.
func (d *DevLogin) Logout(w http.ResponseWriter, _ *http.Request) string {
	http.SetCookie(w, &http.Cookie{Name: devCookie, Value: "", Path: "/", HttpOnly: true, Secure: d.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	return ""
}

var (
	_ identity.Provider       = (*DevLogin)(nil)
	_ identity.Mounter        = (*DevLogin)(nil)
	_ identity.Logouter       = (*DevLogin)(nil)
	_ identity.CookieStripper = (*DevLogin)(nil)
)
