package spa_test

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sensegate/sensegate/examples/mashup"
	"github.com/sensegate/sensegate/examples/spa"
)

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

// The page, its script and style, oidc-client-ts and the mashup's enigma.js
// are served; every script and style the page names is among them.
func TestHandlerServesTheApp(t *testing.T) {
	h := spa.Handler(spa.Config{Authority: "http://127.0.0.1:1", ClientID: "spa", Scope: "openid"})
	resp, page := get(t, h, "/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "<title>") {
		t.Fatalf("GET / = %d:\n%s", resp.StatusCode, page)
	}
	for _, path := range []string{"/app.js", "/spa.css", "/vendor/oidc-client-ts.min.js", "/vendor/enigma.min.js", "/vendor/enigma-schema-12.2027.0.json"} {
		resp, body := get(t, h, path)
		if resp.StatusCode != http.StatusOK || body == "" {
			t.Errorf("GET %s = %d, %d bytes; want 200 and the file", path, resp.StatusCode, len(body))
		}
	}
	for _, src := range []string{"vendor/oidc-client-ts.min.js", "vendor/enigma.min.js", "app.js"} {
		if !strings.Contains(page, `<script src="`+src+`">`) {
			t.Errorf("index.html does not load %s", src)
		}
	}
	// enigma.js is examples/mashup's, not a copy.
	want, err := fs.ReadFile(mashup.Files, "vendor/enigma.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, h, "/vendor/enigma.min.js"); body != string(want) {
		t.Error("vendor/enigma.min.js is not examples/mashup's")
	}
	for _, path := range []string{"/vendor/README.md", "/vendor/oidc-client-ts-LICENSE", "/spa.go"} {
		if resp, _ := get(t, h, path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}

// config.json tells the page its provider and client, uncached.
func TestHandlerConfig(t *testing.T) {
	c := spa.Config{Authority: "http://127.0.0.1:9999", ClientID: "sensegate-spa", Scope: "openid profile offline_access"}
	resp, body := get(t, spa.Handler(c), "/config.json")
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("config.json = %q: %v", body, err)
	}
	want := map[string]string{"authority": c.Authority, "clientId": c.ClientID, "scope": c.Scope}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config.json (-want +got):\n%s", diff)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("config.json headers = %v", resp.Header)
	}
}
