package qliksim

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cfgWrite writes a YAML config file and returns its path.
func cfgWrite(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qliksim.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// cfgErrorHas reports which of want are missing from err's text.
func cfgErrorHas(err error, want ...string) (missing []string) {
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			missing = append(missing, w)
		}
	}
	return missing
}

func TestConfigDefaultValidates(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v, want nil", err)
	}
	// The seed must be what the QRS tests and the docs rely on.
	cfg := DefaultConfig()
	if cfg.ProxyListen != DefaultProxyListen || cfg.QPSListen != DefaultQPSListen || cfg.AdminListen != "" {
		t.Errorf("DefaultConfig() listeners = %q %q %q, want %q %q \"\"", cfg.ProxyListen, cfg.QPSListen, cfg.AdminListen, DefaultProxyListen, DefaultQPSListen)
	}
	var users []string
	for _, u := range cfg.Users {
		users = append(users, u.Directory+`\`+u.ID)
	}
	if diff := cmp.Diff([]string{`ACME\alice`, `ACME\bob`, `ACME\carol`, `ACME\dev`}, users); diff != "" {
		t.Errorf("DefaultConfig().Users (-want +got):\n%s", diff)
	}
	// DefaultConfig returns a fresh value each time: changing one must not
	// change the next.
	cfg.Users[0].ID = "mallory"
	cfg.VirtualProxies[0].HostAllowList[0] = "evil.example"
	if again := DefaultConfig(); again.Users[0].ID != "alice" || again.VirtualProxies[0].HostAllowList[0] != "localhost" {
		t.Errorf("DefaultConfig() after mutating an earlier result: users[0].id = %q, host_allow_list[0] = %q, want alice, localhost", again.Users[0].ID, again.VirtualProxies[0].HostAllowList[0])
	}
}

func TestConfigLoadEmpty(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"empty file", ""},
		{"comment only", "# nothing to change\n"},
		{"empty document", "---\n"},
		{"empty mapping", "{}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadConfig(cfgWrite(t, tt.yaml))
			if err != nil {
				t.Fatalf("LoadConfig(%q) error: %v", tt.yaml, err)
			}
			if diff := cmp.Diff(DefaultConfig(), got); diff != "" {
				t.Errorf("LoadConfig(%q) (-want DefaultConfig() +got):\n%s", tt.yaml, diff)
			}
		})
	}
}

func TestConfigLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("LoadConfig(%s) error = %v, want one naming the file", path, err)
	}
}

func TestConfigLoadOverrides(t *testing.T) {
	const yaml = `
admin_listen: 127.0.0.1:9090
cert_dir: /var/lib/qliksim/certs
websocket_csrf: true
virtual_proxies:
  - prefix: mash
    session_cookie: X-Mash-Session
    session_cookie_domain: example.com
    session_timeout: 10m
    host_allow_list: [app.example.com, localhost]
    authentication_module_redirect_uri: https://login.example.com/qlik
    secure_https: false
    same_site_https: None
    same_site_http: lax
users:
  - directory: CORP
    id: zed
    name: Zed Zimmer
    groups: [Sales, Ops]
`
	got, err := LoadConfig(cfgWrite(t, yaml))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	no := false
	want := DefaultConfig()
	want.AdminListen = "127.0.0.1:9090"
	want.CertDir = "/var/lib/qliksim/certs"
	want.WebsocketCSRF = true
	// A list in the file replaces the whole default list.
	want.VirtualProxies = []VirtualProxy{{
		Prefix: "mash", SessionCookie: "X-Mash-Session", SessionCookieDomain: "example.com",
		SessionTimeout: 10 * time.Minute, HostAllowList: []string{"app.example.com", "localhost"},
		AuthModuleRedirectURI: "https://login.example.com/qlik",
		SecureHTTPS:           &no, SameSiteHTTPS: "None", SameSiteHTTP: "lax",
	}}
	want.Users = []User{{Directory: "CORP", ID: "zed", Name: "Zed Zimmer", Groups: []string{"Sales", "Ops"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadConfig (-want +got):\n%s", diff)
	}
}

// TestConfigOverridesTakeEffect runs a simulator from a loaded file: the
// file's virtual proxy and users are the ones served.
func TestConfigOverridesTakeEffect(t *testing.T) {
	loaded, err := LoadConfig(cfgWrite(t, `
virtual_proxies:
  - prefix: ""
    session_cookie: X-Qlik-Session-corp
    host_allow_list: [localhost]
users:
  - {directory: CORP, id: zed, name: Zed Zimmer, groups: [Finance]}
`))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	sim, _ := newTestSim(t, func(c *Config) { c.VirtualProxies, c.Users = loaded.VirtualProxies, loaded.Users })
	c := login(t, sim, "", `CORP\zed`)
	if c.Name != "X-Qlik-Session-corp" {
		t.Errorf("login as CORP\\zed: cookie %q, want X-Qlik-Session-corp", c.Name)
	}
	apps := qrsGetJSON[[]qrsAppItem](t, sim, "/qrs/app", `CORP\zed`, c)
	if diff := cmp.Diff([]string{"Finance Overview", "Company Handbook"}, qrsAppNames(apps), qrsSorted); diff != "" {
		t.Errorf("GET /qrs/app as CORP\\zed (groups from the file): names (-want +got):\n%s", diff)
	}
	// The default "ticket" virtual proxy is gone with the replaced list, so
	// /ticket/... is a path of the default virtual proxy.
	resp, body := proxyGet(t, sim, vpURL(sim, "", "/ticket/hub"), nil)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), sim.ProxyURL()+"/internal_forms_authentication/") {
		t.Errorf("GET /ticket/hub without session: status %d, Location %q, want 302 to the default VP's forms login; body %q", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

func TestConfigDurations(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"45m", 45 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"90s", 90 * time.Second},
		{`"2h"`, 2 * time.Hour},
		{"0s", 0},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			cfg, err := LoadConfig(cfgWrite(t, "virtual_proxies:\n  - session_cookie: X-Qlik-Session\n    session_timeout: "+tt.value+"\n"))
			if err != nil {
				t.Fatalf("LoadConfig(session_timeout: %s): %v", tt.value, err)
			}
			if got := cfg.VirtualProxies[0].SessionTimeout; got != tt.want {
				t.Errorf("LoadConfig(session_timeout: %s): SessionTimeout = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

// TestConfigSessionTimeoutFromFile: a timeout read from YAML drives idle
// expiry.
func TestConfigSessionTimeoutFromFile(t *testing.T) {
	loaded, err := LoadConfig(cfgWrite(t, "virtual_proxies:\n  - session_cookie: X-Qlik-Session\n    session_timeout: 45m\n    host_allow_list: [localhost]\n"))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	sim, clock := newTestSim(t, func(c *Config) { c.VirtualProxies = loaded.VirtualProxies })
	login(t, sim, "", `ACME\alice`)
	clock.Advance(31 * time.Minute)
	if n := sim.Sweep(); n != 0 {
		t.Fatalf("Sweep after 31m idle with session_timeout 45m: ended %d, want 0", n)
	}
	clock.Advance(15 * time.Minute)
	if n := sim.Sweep(); n != 1 {
		t.Errorf("Sweep after 46m idle with session_timeout 45m: ended %d, want 1", n)
	}
}

func TestConfigLoadRejects(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown top-level key", "proxy_http: true\nvirtual_proxys: []\n", []string{"line 2", "virtual_proxys"}},
		{"unknown user key", "users: [{directry: X, id: y}]\n", []string{"line 1", "directry"}},
		{"unknown virtual proxy key", "virtual_proxies:\n  - prefix: a\n    sesion_cookie: b\n", []string{"line 3", "sesion_cookie"}},
		{"unknown app key", "apps:\n  - id: 5a8a1b2c-0009-4c1e-9d3f-000000000009\n    name: X\n    owners: [ACME\\carol]\n", []string{"line 4", "owners"}},
		{"duration without unit", "virtual_proxies:\n  - session_cookie: X\n    session_timeout: 45\n", []string{"line 3", "45"}},
		{"bad duration", "virtual_proxies:\n  - session_cookie: X\n    session_timeout: soon\n", []string{"line 3", "soon"}},
		{"bool typo", "proxy_http: maybe\n", []string{"line 1", "maybe"}},
		{"not a mapping", "- proxy_listen: x\n", []string{"line 1"}},
		{"invalid YAML", "users: [\n", []string{"line"}},
		// Values that decode but do not validate name their key path.
		{"invalid value", "virtual_proxies:\n  - prefix: Sales\n    session_cookie: X\n", []string{`virtual_proxies[0].prefix: "Sales"`}},
		{"empty list", "virtual_proxies: []\n", []string{"virtual_proxies"}},
		// A second document would be silently ignored: everything after a
		// stray "---" would not apply.
		{"second document", "proxy_http: false\n---\nproxy_http: true\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := cfgWrite(t, tt.yaml)
			_, err := LoadConfig(path)
			if err == nil {
				if tt.name == "second document" {
					t.Fatalf("BUG (config.go LoadConfig): LoadConfig(%q) = nil error; the second YAML document is silently ignored, want an error (decode again and require io.EOF)", tt.yaml)
				}
				t.Fatalf("LoadConfig(%q) = nil error, want one containing %q", tt.yaml, tt.want)
			}
			if missing := cfgErrorHas(err, append(tt.want, path)...); missing != nil {
				t.Errorf("LoadConfig(%q) error:\n%v\nwant it to contain %q", tt.yaml, err, missing)
			}
		})
	}
}

// TestConfigValidateCollectsAll breaks many keys at once: Validate must
// report each, naming its key path and the offending value.
func TestConfigValidateCollectsAll(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QPSListen = "4243"
	cfg.VirtualProxies[0].Prefix = "Sales"
	cfg.VirtualProxies[0].HostAllowList = []string{"localhost", "localhost:8443"}
	cfg.VirtualProxies[1].SessionCookie = cfg.VirtualProxies[0].SessionCookie
	cfg.VirtualProxies[1].SameSiteHTTPS = "bogus"
	cfg.Users[1].ID = `ACME\bob`
	cfg.Apps[3].ID = "alice-sandbox" // also leaves reload_tasks[3] without its app
	cfg.ReloadTasks[0].AppID = "5a8a1b2c-00ff-4c1e-9d3f-0000000000ff"
	want := []string{
		`qps_listen: "4243"`,
		`virtual_proxies[0].prefix: "Sales"`,
		`virtual_proxies[0].host_allow_list[1]: "localhost:8443"`,
		`virtual_proxies[1].session_cookie: "X-Qlik-Session"`,
		`virtual_proxies[1].same_site_https: "bogus"`,
		`users[1].id: must not contain a backslash`,
		`apps[3].id: "alice-sandbox"`,
		`reload_tasks[0].app_id: "5a8a1b2c-00ff-4c1e-9d3f-0000000000ff"`,
		`reload_tasks[3].app_id: "5a8a1b2c-0004-4c1e-9d3f-000000000004"`,
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatalf("Validate() = nil, want %d problems", len(want))
	}
	if missing := cfgErrorHas(err, want...); missing != nil {
		t.Errorf("Validate() error:\n%v\nwant it to contain %q", err, missing)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) {
		t.Errorf("Validate() reported %d problems, want %d (one line each):\n%v", len(lines), len(want), err)
	}
}

// TestConfigValidate checks one problem at a time.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error; nil means valid
		bug    string   // set when the case fails because of a known bug
	}{
		{"default", func(*Config) {}, nil, ""},
		{"admin listen set", func(c *Config) { c.AdminListen = "127.0.0.1:0" }, nil, ""},
		{"same site any case", func(c *Config) {
			c.VirtualProxies[0].SameSiteHTTPS, c.VirtualProxies[0].SameSiteHTTP = "strict", "NONE"
		}, nil, ""},
		{"app without owner", func(c *Config) { c.Apps[2].Owner = "" }, nil, ""},
		{"zero config", func(c *Config) { *c = Config{} }, []string{"proxy_listen", "qps_listen", "virtual_proxies"}, ""},
		{"proxy listen without port", func(c *Config) { c.ProxyListen = "localhost" }, []string{`proxy_listen: "localhost"`}, ""},
		{"admin listen without port", func(c *Config) { c.AdminListen = "127.0.0.1" }, []string{`admin_listen: "127.0.0.1"`}, ""},
		{"negative script size", func(c *Config) { c.ScriptSize = -1 }, []string{"script_size"}, ""},
		{"static resources", func(c *Config) {
			c.StaticResources = []StaticResource{{Path: "/resources/assets/app.js", Size: 1 << 20}, {Path: "/content/Default/empty.txt"}}
		}, nil, ""},
		{"static resource outside", func(c *Config) { c.StaticResources = []StaticResource{{Path: "/qrs/app", Size: 1}} }, []string{`static_resources[0].path: "/qrs/app"`}, ""},
		{"static resource not clean", func(c *Config) { c.StaticResources = []StaticResource{{Path: "/resources/a/../b.js"}} }, []string{"static_resources[0].path"}, ""},
		{"static resource built in", func(c *Config) { c.StaticResources = []StaticResource{{Path: "/resources/js/qlik.js"}} }, []string{"static_resources[0].path", "served already"}, ""},
		{"static resource twice", func(c *Config) {
			c.StaticResources = []StaticResource{{Path: "/resources/a.js"}, {Path: "/resources/a.js"}}
		}, []string{"static_resources[1].path", "served already"}, ""},
		{"static resource negative size", func(c *Config) { c.StaticResources = []StaticResource{{Path: "/resources/a.js", Size: -1}} }, []string{"static_resources[0].size"}, ""},
		{"static resource too large", func(c *Config) {
			c.StaticResources = []StaticResource{{Path: "/resources/a.js", Size: MaxStaticSize + 1}}
		}, []string{"static_resources[0].size"}, ""},
		{"no virtual proxy", func(c *Config) { c.VirtualProxies = nil }, []string{"virtual_proxies"}, ""},
		{"prefix with slash", func(c *Config) { c.VirtualProxies[1].Prefix = "a/b" }, []string{`virtual_proxies[1].prefix: "a/b"`}, ""},
		{"duplicate prefix", func(c *Config) { c.VirtualProxies[1].Prefix = "" }, []string{`virtual_proxies[1].prefix: ""`}, ""},
		{"empty cookie name", func(c *Config) { c.VirtualProxies[0].SessionCookie = "" }, []string{"virtual_proxies[0].session_cookie"}, ""},
		{"cookie name with space", func(c *Config) { c.VirtualProxies[0].SessionCookie = "X Qlik" }, []string{`virtual_proxies[0].session_cookie: "X Qlik"`}, ""},
		// net/http drops a Set-Cookie whose name is not an RFC 7230 token,
		// so every login on this virtual proxy would silently fail.
		{"cookie name not a token", func(c *Config) { c.VirtualProxies[1].SessionCookie = "X-Qlik/Session" }, []string{`virtual_proxies[1].session_cookie: "X-Qlik/Session"`},
			"config.go Validate: session_cookie is checked against \" ;=,\\t\" only; use the RFC 7230 token rule that net/http's Cookie.String applies"},
		{"negative timeout", func(c *Config) { c.VirtualProxies[1].SessionTimeout = -time.Minute }, []string{"virtual_proxies[1].session_timeout"}, ""},
		{"allow list with scheme", func(c *Config) { c.VirtualProxies[0].HostAllowList = []string{"https://localhost"} }, []string{"virtual_proxies[0].host_allow_list[0]"}, ""},
		{"allow list empty entry", func(c *Config) { c.VirtualProxies[0].HostAllowList = []string{""} }, []string{"virtual_proxies[0].host_allow_list[0]"}, ""},
		{"same site http bogus", func(c *Config) { c.VirtualProxies[0].SameSiteHTTP = "sometimes" }, []string{`virtual_proxies[0].same_site_http: "sometimes"`}, ""},
		{"blank directory", func(c *Config) { c.Users[0].Directory = "  " }, []string{"users[0].directory"}, ""},
		{"directory with backslash", func(c *Config) { c.Users[2].Directory = `AC\ME` }, []string{"users[2].directory"}, ""},
		{"user listed twice", func(c *Config) { c.Users[3].Directory, c.Users[3].ID = "acme", "ALICE" }, []string{"users[3]", "listed twice"}, ""},
		{"app id not a GUID", func(c *Config) { c.Apps[0].ID = "sales" }, []string{`apps[0].id: "sales"`, "reload_tasks[0].app_id"}, ""},
		{"duplicate app id", func(c *Config) { c.Apps[1].ID = strings.ToUpper(c.Apps[0].ID) }, []string{"apps[1].id"}, ""},
		{"app without name", func(c *Config) { c.Apps[2].Name = "" }, []string{"apps[2].name"}, ""},
		{"app owner without directory", func(c *Config) { c.Apps[0].Owner = "carol" }, []string{`apps[0].owner: "carol"`},
			"config.go Validate: app owner/users errors say \"apps[i]: user ...\"; name the key, e.g. apps[i].owner and apps[i].users[j]"},
		{"app user without directory", func(c *Config) { c.Apps[1].Users = []string{`ACME\bob`, "bob"} }, []string{`apps[1].users[1]: "bob"`},
			"config.go Validate: app owner/users errors say \"apps[i]: user ...\"; name the key, e.g. apps[i].owner and apps[i].users[j]"},
		{"task id not a GUID", func(c *Config) { c.ReloadTasks[2].ID = "reload-handbook" }, []string{`reload_tasks[2].id: "reload-handbook"`}, ""},
		{"task without app", func(c *Config) { c.ReloadTasks[1].AppID = "" }, []string{`reload_tasks[1].app_id: ""`}, ""},
		// Two tasks with one id: POST /qrs/task/{id}/start could only ever
		// reach the first. Apps get this check; tasks must too.
		{"duplicate task id", func(c *Config) { c.ReloadTasks[3].ID = c.ReloadTasks[0].ID }, []string{"reload_tasks[3].id"},
			"config.go Validate: reload task ids are not checked for duplicates (apps are); add the same check as for apps[i].id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want == nil:
				return
			case err == nil:
				if tt.bug != "" {
					t.Fatalf("BUG (%s): Validate() = nil, want an error containing %q", tt.bug, tt.want)
				}
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			if missing := cfgErrorHas(err, tt.want...); missing != nil {
				if tt.bug != "" {
					t.Errorf("BUG (%s): Validate() error:\n%v\nwant it to contain %q", tt.bug, err, missing)
					return
				}
				t.Errorf("Validate() error:\n%v\nwant it to contain %q", err, missing)
			}
		})
	}
}
