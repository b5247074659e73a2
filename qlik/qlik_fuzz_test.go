package qlik

import (
	"strings"
	"testing"
)

// FuzzIsLoginRedirect checks the login-redirect detection on arbitrary
// statuses and Locations: only 3xx statuses, only Locations naming a
// Qlik authentication target, regardless of ASCII case.
func FuzzIsLoginRedirect(f *testing.F) {
	for _, s := range []struct {
		status int
		loc    string
	}{
		{302, "https://qlik/internal_forms_authentication/?targetId=x"},
		{302, "https://qlik/sales/internal_windows_authentication/?targetId=x"},
		{302, "https://idp.example.com/login?proxyRestUri=https://qlik:4243/qps/&targetId=abc"},
		{302, "https://auth.example.com/module?x=1"},
		{200, "https://qlik/internal_forms_authentication/"},
		{302, "/hub/"},
		{307, ""},
		{399, "HTTPS://AUTH.EXAMPLE.COM/MODULE"},
		{-1, "\x00"},
		{400, "proxyresturi=&targetid="},
	} {
		f.Add(s.status, s.loc)
	}
	const module = "https://auth.example.com/module"
	f.Fuzz(func(t *testing.T, status int, loc string) {
		got := IsLoginRedirect(status, loc, module)
		if got && (status < 300 || status > 399) {
			t.Fatalf("status %d counted as a login redirect", status)
		}
		l := strings.ToLower(loc)
		if got && !strings.Contains(l, "authentication") && !strings.Contains(l, "targetid=") && !strings.HasPrefix(l, "https://auth.example.com/module") {
			t.Fatalf("%d %q counted as a login redirect", status, loc)
		}
		if isASCII(loc) {
			if IsLoginRedirect(status, strings.ToUpper(loc), module) != got || IsLoginRedirect(status, l, module) != got {
				t.Fatalf("%d %q: detection depends on case", status, loc)
			}
		}
		if status >= 300 && status <= 399 && strings.Contains(l, "/internal_forms_authentication") && !got {
			t.Fatalf("%d %q: forms login not detected", status, loc)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
