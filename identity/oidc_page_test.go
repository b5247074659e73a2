package identity

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The sign-in pages are written without html/template (see writePage):
// what they show is escaped all the same, the link to sign in again
// included, and the page carries its headers and status.
func TestOIDCPageEscapes(t *testing.T) {
	o := &OIDC{}
	rec := httptest.NewRecorder()
	o.writePage(rec, http.StatusForbidden, `Refused <b>"x"</b>`, `a & b <script>alert(1)</script>`, `/.sensegate/oidc/login?rd=%2F&x="><script>`)
	if rec.Code != http.StatusForbidden {
		t.Errorf("status %d, want 403", rec.Code)
	}
	for k, want := range map[string]string{"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	body := rec.Body.String()
	for _, want := range []string{
		"<title>sensegate: Refused &lt;b&gt;&#34;x&#34;&lt;/b&gt;</title>",
		"<h1>Refused &lt;b&gt;&#34;x&#34;&lt;/b&gt;</h1>",
		"<p>a &amp; b &lt;script&gt;alert(1)&lt;/script&gt;</p>",
		`<a href="/.sensegate/oidc/login?rd=%2F&amp;x=&#34;&gt;&lt;script&gt;">Sign in again</a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>") {
		t.Errorf("page has unescaped markup:\n%s", body)
	}

	rec = httptest.NewRecorder()
	o.writePage(rec, http.StatusInternalServerError, "Sign-in failed", "The sign-in could not be started.", "")
	if strings.Contains(rec.Body.String(), "<a ") {
		t.Errorf("a page without a retry link has one:\n%s", rec.Body.String())
	}
}
