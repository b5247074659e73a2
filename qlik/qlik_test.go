package qlik

import (
	"net/url"
	"strings"
	"testing"
)

func TestPathsMatch(t *testing.T) {
	p := NewPaths([]string{"/custom/"})
	tests := []struct {
		path string
		want bool
	}{
		{"/hub/", true}, {"/hub", true}, {"/hub/x", true}, {"/app/engineData", true},
		{"/tempcontent/3f2a/export.xlsx", true}, {"/appcontent/1/img.png", true}, {"/media/logo.png", true},
		{"/dev-hub/", true}, {"/qps/user", true}, {"/qps/csrftoken", true},
		{"/qps/username", false}, {"/qps/user/ACME/bob", false}, {"/qps/", false}, {"/qmc/", false},
		{"/hubx", false}, {"/", false}, {"/mashup/", false},
		{"/custom/a", true}, {"/custom", true},
	}
	for _, tt := range tests {
		if got := p.Match(tt.path); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
	if (Paths{}).Match("/custom/a") {
		t.Error("the zero Paths matches an extra path")
	}
	if got := len(p.List()); got != len(paths)+1 {
		t.Errorf("List has %d paths, want %d", got, len(paths)+1)
	}
	if !IsEnginePath("/app/engineData") || IsEnginePath("/api/v1") {
		t.Error("IsEnginePath is wrong")
	}
}

func TestIsSessionCookie(t *testing.T) {
	tests := []struct {
		name, configured string
		want, any        bool
	}{
		{"X-Qlik-Session-vp", "X-Qlik-Session-vp", true, true},
		{"x-qlik-session-VP", "X-Qlik-Session-vp", true, true},
		{"X-Qlik-Session-vp-HTTP", "X-Qlik-Session-vp", true, true},
		{"X-Qlik-Session-vp-http", "X-Qlik-Session-vp", true, true},
		{"X-Qlik-Session-vpx", "X-Qlik-Session-vp", false, true},
		{"X-Qlik-Session", "X-Qlik-Session-vp", false, true},
		{"Sense-Mashup", "Sense-Mashup", true, true},
		{"sense-mashup-HTTP", "Sense-Mashup", true, true},
		{"Sense-Mashup2", "Sense-Mashup", false, false},
		{"lang", "Sense-Mashup", false, false},
		{"", "", false, false},
	}
	for _, tt := range tests {
		if got := IsSessionCookie(tt.name, tt.configured); got != tt.want {
			t.Errorf("IsSessionCookie(%q, %q) = %v, want %v", tt.name, tt.configured, got, tt.want)
		}
		if got := IsAnySessionCookie(tt.name, tt.configured); got != tt.any {
			t.Errorf("IsAnySessionCookie(%q, %q) = %v, want %v", tt.name, tt.configured, got, tt.any)
		}
	}
}

func TestIsLoginRedirect(t *testing.T) {
	const module = "https://login.example.com/qlik"
	tests := []struct {
		status int
		loc    string
		want   bool
	}{
		{302, "https://qlik/vp/internal_forms_authentication/?targetId=1", true},
		{302, "https://qlik/internal_windows_authentication/?targetUri=x", true},
		{302, "http://localhost:3000/login?proxyRestUri=https%3a%2f%2fq%3a4243%2fqps%2fvp%2f&targetId=f0a9", true},
		{302, "https://LOGIN.example.com/qlik?x=1", true},
		{307, "/vp/internal_forms_authentication/", true},
		{302, "https://qlik/vp/hub/", false},
		{302, "https://elsewhere/?proxyRestUri=x", false},
		{200, "https://qlik/vp/internal_forms_authentication/", false},
		{302, "", false},
	}
	for _, tt := range tests {
		if got := IsLoginRedirect(tt.status, tt.loc, module); got != tt.want {
			t.Errorf("IsLoginRedirect(%d, %q) = %v, want %v", tt.status, tt.loc, got, tt.want)
		}
	}
}

func TestIsAuthError(t *testing.T) {
	html := "<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Authentication error: Restart the browser.</h1></body></html>"
	tests := []struct {
		status int
		body   string
		want   bool
	}{
		{500, "Authentication error: Restart the browser.", true},
		{500, html, true},
		{500, strings.Repeat(" ", AuthErrorPeek-len(AuthErrorText)) + AuthErrorText, true},
		{500, strings.Repeat(" ", AuthErrorPeek) + AuthErrorText, false},
		{500, "Internal Server Error", false},
		{502, "Authentication error", false},
		{200, "Authentication error", false},
	}
	for _, tt := range tests {
		if got := IsAuthError(tt.status, []byte(tt.body)); got != tt.want {
			t.Errorf("IsAuthError(%d, %.40q) = %v, want %v", tt.status, tt.body, got, tt.want)
		}
	}
}

func TestTopics(t *testing.T) {
	for _, m := range []string{TopicSessionTimedOut, TopicSessionLoggedOut, TopicSessionClosed} {
		if !IsSessionEndingTopic(m) || !IsFatalTopic(m) {
			t.Errorf("%s: not session-ending and fatal", m)
		}
	}
	for _, m := range []string{TopicMaxParallelSessions, "OnNoEngineAvailable", "OnLicenseAccessDenied"} {
		if IsSessionEndingTopic(m) || !IsFatalTopic(m) {
			t.Errorf("%s: want fatal to the socket only", m)
		}
	}
	for _, m := range []string{TopicConnected, TopicAuthenticationInformation, "OnSessionTimedOutx", ""} {
		if IsFatalTopic(m) {
			t.Errorf("%s: fatal", m)
		}
	}
}

func TestNormalizeOrigin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://Sense.Example.com", "https://sense.example.com"},
		{"https://sense.example.com:443", "https://sense.example.com"},
		{"http://sense.example.com:80/", "http://sense.example.com"},
		{"HTTP://sense:8080", "http://sense:8080"},
		{"https://[::1]:443", "https://[::1]"},
		{"https://[::1]:8443", "https://[::1]:8443"},
		{"null", ""}, {"", ""}, {"https://", ""}, {"https://a/b", ""}, {"ftp://a", ""}, {"https://u@a", ""},
	}
	for _, tt := range tests {
		got, ok := NormalizeOrigin(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("NormalizeOrigin(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
	u, _ := url.Parse("https://QLIK.example.com:443/hub/")
	if got := Origin(u); got != "https://qlik.example.com" {
		t.Errorf("Origin(%v) = %q", u, got)
	}
}

func TestIsEncryptedPEM(t *testing.T) {
	for _, tt := range []struct {
		pem  string
		want bool
	}{
		{"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", true},
		{"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n", true},
		{"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", false},
		{"not PEM", false},
	} {
		if got := IsEncryptedPEM([]byte(tt.pem)); got != tt.want {
			t.Errorf("IsEncryptedPEM(%.40q) = %v, want %v", tt.pem, got, tt.want)
		}
	}
}
