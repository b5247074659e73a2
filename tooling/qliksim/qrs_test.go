package qliksim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Seed ids used by the QRS tests (see DefaultConfig).
const (
	qrsSalesApp    = "5a8a1b2c-0001-4c1e-9d3f-000000000001"
	qrsFinanceApp  = "5a8a1b2c-0002-4c1e-9d3f-000000000002"
	qrsHandbookApp = "5a8a1b2c-0003-4c1e-9d3f-000000000003"
	qrsSandboxApp  = "5a8a1b2c-0004-4c1e-9d3f-000000000004"

	qrsSalesTask    = "7b9c2d3e-0001-4f2a-8e4b-000000000001"
	qrsFinanceTask  = "7b9c2d3e-0002-4f2a-8e4b-000000000002"
	qrsHandbookTask = "7b9c2d3e-0003-4f2a-8e4b-000000000003"
	qrsSandboxTask  = "7b9c2d3e-0004-4f2a-8e4b-000000000004"
)

// qrsSorted compares string slices without regard to order: QRS does not
// promise an order for list results.
var qrsSorted = cmpopts.SortSlices(func(a, b string) bool { return a < b })

// qrsDo sends a QRS call through the proxy side on prefix with cookie c (may
// be nil) and a valid Xrfkey pair; hdr are extra header name/value pairs.
func qrsDo(t *testing.T, sim *Sim, method, prefix, path string, c *http.Cookie, hdr ...string) (*http.Response, string) {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	hdr = append([]string{"X-Qlik-Xrfkey", testXrfkey}, hdr...)
	return proxyDo(t, sim, method, vpURL(sim, prefix, path+sep+"xrfkey="+testXrfkey), c, hdr...)
}

// qrsPathOn is path as requested on virtual proxy prefix, for messages.
func qrsPathOn(prefix, path string) string {
	if prefix == "" {
		return path
	}
	return "/" + prefix + path
}

// qrsGetJSON is a QRS GET on the default virtual proxy that must answer 200
// with JSON; the body is decoded into a value of type T.
func qrsGetJSON[T any](t *testing.T, sim *Sim, path, user string, c *http.Cookie) T {
	t.Helper()
	resp, body := qrsDo(t, sim, "GET", "", path, c)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s as %s: status %d, want 200; body %q", path, user, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s as %s: Content-Type = %q, want application/json", path, user, ct)
	}
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET %s as %s: decoding %q: %v", path, user, body, err)
	}
	return v
}

func TestQRSXrfkey(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice := login(t, sim, "", `ACME\alice`)
	const other = "fedcba9876543210"
	tests := []struct {
		name   string
		query  string // raw query of GET /qrs/about
		header []string
		want   int
	}{
		{"valid lowercase name", "xrfkey=" + testXrfkey, []string{testXrfkey}, http.StatusOK},
		{"valid Xrfkey name", "Xrfkey=" + testXrfkey, []string{testXrfkey}, http.StatusOK},
		{"valid XRFKEY name", "XRFKEY=" + testXrfkey, []string{testXrfkey}, http.StatusOK},
		{"valid with other parameters", "filter=name+eq+%27x%27&xrfkey=" + testXrfkey, []string{testXrfkey}, http.StatusOK},
		{"missing key", "", []string{testXrfkey}, http.StatusForbidden},
		{"missing header", "xrfkey=" + testXrfkey, nil, http.StatusForbidden},
		{"missing both", "", nil, http.StatusForbidden},
		{"mismatched key", "xrfkey=" + other, []string{testXrfkey}, http.StatusForbidden},
		{"key differs in case", "xrfkey=" + strings.ToUpper(testXrfkey), []string{testXrfkey}, http.StatusForbidden},
		{"15-char key", "xrfkey=" + testXrfkey[:15], []string{testXrfkey[:15]}, http.StatusForbidden},
		{"17-char key", "xrfkey=" + testXrfkey + "0", []string{testXrfkey + "0"}, http.StatusForbidden},
		{"non-alphanumeric key", "xrfkey=" + url.QueryEscape("0123456789abcde!"), []string{"0123456789abcde!"}, http.StatusForbidden},
		{"empty key", "xrfkey=", []string{""}, http.StatusForbidden},
		{"key given twice", "xrfkey=" + testXrfkey + "&Xrfkey=" + other, []string{testXrfkey}, http.StatusForbidden},
		{"header given twice", "xrfkey=" + testXrfkey, []string{testXrfkey, testXrfkey}, http.StatusForbidden},
		// A "#" in the URL ends the query before the key (observed cause of the 403).
		{"key after fragment", "a=b#&xrfkey=" + testXrfkey, []string{testXrfkey}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := vpURL(sim, "", "/qrs/about")
			if tt.query != "" {
				u += "?" + tt.query
			}
			req, err := http.NewRequest("GET", u, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.AddCookie(alice)
			for _, h := range tt.header {
				req.Header.Add("X-Qlik-Xrfkey", h)
			}
			resp, err := proxyClient(t, sim).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body := string(b)
			if resp.StatusCode != tt.want {
				t.Fatalf("GET /qrs/about?%s as alice: status %d, want %d; body %q", tt.query, resp.StatusCode, tt.want, body)
			}
			if tt.want == http.StatusForbidden && !strings.Contains(body, msgXSRF) {
				t.Errorf("GET /qrs/about?%s as alice: body %q, want it to contain %q", tt.query, body, msgXSRF)
			}
		})
	}
}

// TestQRSUnauthenticated: without a session QRS answers like any other
// path, with a 302 to the login module (observed: not 401), whether or not
// the Xrfkey pair is valid.
func TestQRSUnauthenticated(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	defaultCookie := login(t, sim, "", `ACME\alice`)
	formsLogin := sim.ProxyURL() + "/internal_forms_authentication/?targetId="
	external := "http://localhost:3000/login?proxyRestUri=" + lowerEscape(sim.QPSURL()+"/qps/ticket/") + "&targetId="
	tests := []struct {
		name, method, prefix, path string
		cookie                     *http.Cookie
		noXrfkey                   bool
		wantLocation               string // prefix of Location
	}{
		{"about", "GET", "", "/qrs/about", nil, false, formsLogin},
		{"app list", "GET", "", "/qrs/app", nil, false, formsLogin},
		{"app full", "GET", "", "/qrs/app/full", nil, false, formsLogin},
		{"app by id", "GET", "", "/qrs/app/" + qrsHandbookApp, nil, false, formsLogin},
		{"reloadtask", "GET", "", "/qrs/reloadtask/full", nil, false, formsLogin},
		{"task start", "POST", "", "/qrs/task/" + qrsHandbookTask + "/start", nil, false, formsLogin},
		{"without xrfkey", "GET", "", "/qrs/app", nil, true, formsLogin},
		{"ticket VP", "GET", "ticket", "/qrs/app", nil, false, external},
		{"ticket VP task start", "POST", "ticket", "/qrs/task/" + qrsHandbookTask + "/start/synchronous", nil, false, external},
		// The default VP's cookie is named X-Qlik-Session; the ticket VP
		// reads X-Qlik-Session-ticket only.
		{"ticket VP with default VP cookie", "GET", "ticket", "/qrs/about", defaultCookie, false, external},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			var body string
			if tt.noXrfkey {
				resp, body = proxyDo(t, sim, tt.method, vpURL(sim, tt.prefix, tt.path), tt.cookie)
			} else {
				resp, body = qrsDo(t, sim, tt.method, tt.prefix, tt.path, tt.cookie)
			}
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("%s %s without session: status %d, want 302; body %q", tt.method, qrsPathOn(tt.prefix, tt.path), resp.StatusCode, body)
			}
			loc := resp.Header.Get("Location")
			if !strings.HasPrefix(loc, tt.wantLocation) {
				t.Fatalf("%s %s without session: Location = %q, want prefix %q", tt.method, qrsPathOn(tt.prefix, tt.path), loc, tt.wantLocation)
			}
			if id := loc[len(tt.wantLocation):]; !guidRE.MatchString(id) {
				t.Errorf("%s %s without session: targetId = %q, want a GUID", tt.method, qrsPathOn(tt.prefix, tt.path), id)
			}
		})
	}
}

func TestQRSAbout(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := login(t, sim, "", `ACME\dev`)
	got := qrsGetJSON[map[string]any](t, sim, "/qrs/about", "dev", c)
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	wantKeys := []string{"buildVersion", "buildDate", "databaseProvider", "nodeType", "sharedPersistence", "requiresBootstrap", "singleNodeOnly", "schemaPath"}
	if diff := cmp.Diff(wantKeys, keys, qrsSorted); diff != "" {
		t.Errorf("GET /qrs/about as dev: keys (-want +got):\n%s", diff)
	}
	if v, _ := got["buildVersion"].(string); v == "" {
		t.Errorf("GET /qrs/about as dev: buildVersion = %v, want a non-empty string", got["buildVersion"])
	}
	if got["nodeType"] != float64(1) {
		t.Errorf("GET /qrs/about as dev: nodeType = %v, want 1 (central)", got["nodeType"])
	}
	if got["schemaPath"] != "About" {
		t.Errorf("GET /qrs/about as dev: schemaPath = %v, want About", got["schemaPath"])
	}
}

// qrsAppItem is the part of a QRS app the tests look at.
type qrsAppItem struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Owner *struct {
		UserDirectory string `json:"userDirectory"`
		UserID        string `json:"userId"`
	} `json:"owner"`
}

func qrsAppNames(apps []qrsAppItem) []string {
	names := []string{}
	for _, a := range apps {
		names = append(names, a.Name)
	}
	return names
}

func TestQRSAppVisibility(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	tests := []struct {
		user   string
		want   []string
		hidden []string // app ids that must answer 404
	}{
		{`ACME\alice`, []string{"Sales Dashboard", "Company Handbook", "Alice Sandbox"}, []string{qrsFinanceApp}},
		{`ACME\bob`, []string{"Finance Overview", "Company Handbook"}, []string{qrsSalesApp, qrsSandboxApp}},
		{`ACME\carol`, []string{"Sales Dashboard", "Finance Overview", "Company Handbook"}, []string{qrsSandboxApp}},
		{`ACME\dev`, []string{"Company Handbook"}, []string{qrsSalesApp, qrsFinanceApp, qrsSandboxApp}},
		// Users that are not seeded may log in and see apps open to everyone.
		{`OTHER\zoe`, []string{"Company Handbook"}, []string{qrsSalesApp, qrsFinanceApp, qrsSandboxApp}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			c := login(t, sim, "", tt.user)
			for _, path := range []string{"/qrs/app", "/qrs/app/full"} {
				apps := qrsGetJSON[[]qrsAppItem](t, sim, path, tt.user, c)
				if diff := cmp.Diff(tt.want, qrsAppNames(apps), qrsSorted); diff != "" {
					t.Errorf("GET %s as %s: names (-want +got):\n%s", path, tt.user, diff)
				}
				for _, a := range apps {
					resp, body := qrsDo(t, sim, "GET", "", "/qrs/app/"+a.ID, c)
					if resp.StatusCode != http.StatusOK {
						t.Errorf("GET /qrs/app/%s (%s) as %s: status %d, want 200; body %q", a.ID, a.Name, tt.user, resp.StatusCode, body)
					}
				}
			}
			for _, id := range append(tt.hidden, "00000000-0000-4000-8000-000000000000") {
				resp, body := qrsDo(t, sim, "GET", "", "/qrs/app/"+id, c)
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET /qrs/app/%s as %s: status %d, want 404; body %q", id, tt.user, resp.StatusCode, body)
				}
				if strings.Contains(body, id) {
					t.Errorf("GET /qrs/app/%s as %s: body %q reveals the app", id, tt.user, body)
				}
			}
		})
	}
}

func TestQRSAppFullOwner(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := login(t, sim, "", `ACME\alice`)
	type owner struct{ Directory, ID string }
	want := map[string]owner{
		"Sales Dashboard":  {"ACME", "carol"},
		"Company Handbook": {"ACME", "carol"},
		"Alice Sandbox":    {"ACME", "alice"},
	}
	got := map[string]owner{}
	for _, a := range qrsGetJSON[[]qrsAppItem](t, sim, "/qrs/app/full", "alice", c) {
		if a.Owner == nil {
			t.Errorf("GET /qrs/app/full as alice: %s has no owner", a.Name)
			continue
		}
		got[a.Name] = owner{a.Owner.UserDirectory, a.Owner.UserID}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /qrs/app/full as alice: owners (-want +got):\n%s", diff)
	}

	one := qrsGetJSON[qrsAppItem](t, sim, "/qrs/app/"+qrsSandboxApp, "alice", c)
	if one.ID != qrsSandboxApp || one.Name != "Alice Sandbox" || one.Owner == nil || one.Owner.UserID != "alice" {
		t.Errorf("GET /qrs/app/%s as alice: got %+v, want Alice Sandbox owned by alice", qrsSandboxApp, one)
	}

	// The condensed list has no owner.
	for _, a := range qrsGetJSON[[]map[string]any](t, sim, "/qrs/app", "alice", c) {
		if _, ok := a["owner"]; ok {
			t.Errorf("GET /qrs/app as alice: %v has an owner, want the condensed form", a["name"])
		}
	}
}

// TestQRSTicketAttributeGroup: a Group attribute on the ticket adds a group
// to that session only.
func TestQRSTicketAttributeGroup(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	withGroup := login(t, sim, "", `ACME\dev`, Attribute{Key: "Group", Value: "Finance"})
	plain := login(t, sim, "", `ACME\dev`)
	tests := []struct {
		name   string
		cookie *http.Cookie
		want   []string
		status int // of GET /qrs/app/{Finance Overview}
	}{
		{"session with Group=Finance", withGroup, []string{"Finance Overview", "Company Handbook"}, http.StatusOK},
		{"session without attributes", plain, []string{"Company Handbook"}, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps := qrsGetJSON[[]qrsAppItem](t, sim, "/qrs/app", "dev", tt.cookie)
			if diff := cmp.Diff(tt.want, qrsAppNames(apps), qrsSorted); diff != "" {
				t.Errorf("GET /qrs/app as dev (%s): names (-want +got):\n%s", tt.name, diff)
			}
			resp, body := qrsDo(t, sim, "GET", "", "/qrs/app/"+qrsFinanceApp, tt.cookie)
			if resp.StatusCode != tt.status {
				t.Errorf("GET /qrs/app/%s as dev (%s): status %d, want %d; body %q", qrsFinanceApp, tt.name, resp.StatusCode, tt.status, body)
			}
		})
	}
}

// qrsTaskItem is the part of a QRS reload task the tests look at.
type qrsTaskItem struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	App     *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"app"`
}

func TestQRSReloadTasks(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	tests := []struct {
		user string
		want map[string]string // task id → app name
	}{
		{`ACME\alice`, map[string]string{qrsSalesTask: "Sales Dashboard", qrsHandbookTask: "Company Handbook", qrsSandboxTask: "Alice Sandbox"}},
		{`ACME\bob`, map[string]string{qrsFinanceTask: "Finance Overview", qrsHandbookTask: "Company Handbook"}},
		{`ACME\carol`, map[string]string{qrsSalesTask: "Sales Dashboard", qrsFinanceTask: "Finance Overview", qrsHandbookTask: "Company Handbook"}},
		{`ACME\dev`, map[string]string{qrsHandbookTask: "Company Handbook"}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			c := login(t, sim, "", tt.user)

			var wantIDs []string
			for id := range tt.want {
				wantIDs = append(wantIDs, id)
			}
			var ids []string
			for _, task := range qrsGetJSON[[]qrsTaskItem](t, sim, "/qrs/reloadtask", tt.user, c) {
				ids = append(ids, task.ID)
				if task.App != nil {
					t.Errorf("GET /qrs/reloadtask as %s: %s has an app, want the condensed form", tt.user, task.Name)
				}
			}
			if diff := cmp.Diff(wantIDs, ids, qrsSorted); diff != "" {
				t.Errorf("GET /qrs/reloadtask as %s: ids (-want +got):\n%s", tt.user, diff)
			}

			got := map[string]string{}
			for _, task := range qrsGetJSON[[]qrsTaskItem](t, sim, "/qrs/reloadtask/full", tt.user, c) {
				if task.App == nil {
					t.Errorf("GET /qrs/reloadtask/full as %s: %s has no app", tt.user, task.Name)
					continue
				}
				if want := "Reload " + task.App.Name; task.Name != want {
					t.Errorf("GET /qrs/reloadtask/full as %s: task %s is %q for app %q, want %q", tt.user, task.ID, task.Name, task.App.Name, want)
				}
				got[task.ID] = task.App.Name
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GET /qrs/reloadtask/full as %s: task → app.name (-want +got):\n%s", tt.user, diff)
			}
		})
	}
}

func TestQRSTaskStart(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice := login(t, sim, "", `ACME\alice`)
	bob := login(t, sim, "", `ACME\bob`)
	const unknown = "7b9c2d3e-00ff-4f2a-8e4b-0000000000ff"
	tests := []struct {
		name, user   string
		cookie       *http.Cookie
		method, path string
		want         int
	}{
		{"start visible", "alice", alice, "POST", "/qrs/task/" + qrsSalesTask + "/start", http.StatusNoContent},
		{"start visible own app", "alice", alice, "POST", "/qrs/task/" + qrsSandboxTask + "/start", http.StatusNoContent},
		{"start visible upper-case id", "alice", alice, "POST", "/qrs/task/" + strings.ToUpper(qrsSalesTask) + "/start", http.StatusNoContent},
		{"start hidden", "alice", alice, "POST", "/qrs/task/" + qrsFinanceTask + "/start", http.StatusNotFound},
		{"start hidden for bob", "bob", bob, "POST", "/qrs/task/" + qrsSandboxTask + "/start", http.StatusNotFound},
		{"start unknown", "alice", alice, "POST", "/qrs/task/" + unknown + "/start", http.StatusNotFound},
		{"start not a GUID", "alice", alice, "POST", "/qrs/task/nope/start", http.StatusNotFound},
		{"synchronous hidden", "alice", alice, "POST", "/qrs/task/" + qrsFinanceTask + "/start/synchronous", http.StatusNotFound},
		{"synchronous unknown", "alice", alice, "POST", "/qrs/task/" + unknown + "/start/synchronous", http.StatusNotFound},
		{"start unknown sub-resource", "alice", alice, "POST", "/qrs/task/" + qrsSalesTask + "/start/later", http.StatusNotFound},
		{"execution session is finished", "alice", alice, "GET", "/qrs/executionsession/" + unknown, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := qrsDo(t, sim, tt.method, "", tt.path, tt.cookie)
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s as %s: status %d, want %d; body %q", tt.method, tt.path, tt.user, resp.StatusCode, tt.want, body)
			}
		})
	}

	// GET, PUT and DELETE never start a task.
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		for _, path := range []string{"/qrs/task/" + qrsSalesTask + "/start", "/qrs/task/" + qrsSalesTask + "/start/synchronous"} {
			resp, body := qrsDo(t, sim, method, "", path, alice)
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s as alice: status %d, want 404 or 405; body %q", method, path, resp.StatusCode, body)
			}
		}
	}

	t.Run("synchronous", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 3; i++ {
			resp, body := qrsDo(t, sim, "POST", "", "/qrs/task/"+qrsSalesTask+"/start/synchronous", alice)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("POST /qrs/task/%s/start/synchronous as alice: status %d, want 201; body %q", qrsSalesTask, resp.StatusCode, body)
			}
			var got struct {
				Value string `json:"value"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("POST /qrs/task/%s/start/synchronous as alice: decoding %q: %v", qrsSalesTask, body, err)
			}
			if !guidRE.MatchString(got.Value) || got.Value == "00000000-0000-0000-0000-000000000000" {
				t.Errorf("POST /qrs/task/%s/start/synchronous as alice: value = %q, want a non-zero GUID (zeros mean not started)", qrsSalesTask, got.Value)
			}
			if seen[got.Value] {
				t.Errorf("POST /qrs/task/%s/start/synchronous as alice: value %q repeated, want a new execution session each time", qrsSalesTask, got.Value)
			}
			seen[got.Value] = true
		}
	})
}

// TestQRSEvents: every QRS call, allowed or refused, is logged as an "http"
// event of the session's user.
func TestQRSEvents(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	cookies := map[string]*http.Cookie{
		`ACME\alice`: login(t, sim, "", `ACME\alice`),
		`ACME\bob`:   login(t, sim, "", `ACME\bob`),
		`ACME\carol`: login(t, sim, "ticket", `acme\carol`),
	}
	sessionOf := map[string]string{}
	for u, c := range cookies {
		sessionOf[u] = c.Value
	}
	type call struct {
		tag, user, method, prefix, path string
		xrfkey                          bool
		status                          int
	}
	calls := []call{
		{"a1", `ACME\alice`, "GET", "", "/qrs/about", true, 200},
		{"a2", `ACME\alice`, "GET", "", "/qrs/app/full", true, 200},
		{"a3", `ACME\alice`, "POST", "", "/qrs/task/" + qrsSalesTask + "/start", true, 204},
		{"a4", `ACME\alice`, "GET", "", "/qrs/app", false, 403},
		{"b1", `ACME\bob`, "GET", "", "/qrs/reloadtask", true, 200},
		{"b2", `ACME\bob`, "GET", "", "/qrs/app/" + qrsSalesApp, true, 404},
		{"b3", `ACME\bob`, "POST", "", "/qrs/task/" + qrsFinanceTask + "/start/synchronous", true, 201},
		{"c1", `ACME\carol`, "GET", "ticket", "/qrs/reloadtask/full", true, 200},
		{"n1", "", "GET", "", "/qrs/about", true, 302},
	}
	for _, c := range calls {
		var resp *http.Response
		if c.xrfkey {
			resp, _ = qrsDo(t, sim, c.method, c.prefix, c.path, cookies[c.user], "X-Sim-Tag", c.tag)
		} else {
			resp, _ = proxyDo(t, sim, c.method, vpURL(sim, c.prefix, c.path), cookies[c.user], "X-Sim-Tag", c.tag)
		}
		if resp.StatusCode != c.status {
			t.Errorf("%s %s as %q: status %d, want %d", c.method, c.path, c.user, resp.StatusCode, c.status)
		}
	}

	got := map[string]Event{}
	for _, e := range sim.Events(0) {
		if e.Tag == "" {
			continue
		}
		if _, dup := got[e.Tag]; dup {
			t.Errorf("Events: tag %s logged twice", e.Tag)
		}
		got[e.Tag] = e
	}
	for _, c := range calls {
		e, ok := got[c.tag]
		if !ok {
			t.Errorf("Events: no event for %s %s as %q (tag %s)", c.method, c.path, c.user, c.tag)
			continue
		}
		want := Event{Kind: "http", Prefix: c.prefix, Method: c.method, Path: qrsPathOn(c.prefix, c.path), User: c.user, SessionID: sessionOf[c.user], Status: c.status, Tag: c.tag}
		if diff := cmp.Diff(want, e, cmpopts.IgnoreFields(Event{}, "Seq", "Time", "Conn", "ConnRequest")); diff != "" {
			t.Errorf("Events: %s %s as %q (-want +got):\n%s", c.method, c.path, c.user, diff)
		}
	}
}
