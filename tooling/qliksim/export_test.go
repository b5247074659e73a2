package qliksim

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
)

// expTableProps are the properties of the session object the tests
// export: a table with a hypercube, as a mashup creates one.
var expTableProps = map[string]any{
	"qInfo":          map[string]any{"qId": "sales-table", "qType": "table"},
	"qHyperCubeDef":  map[string]any{"qDimensions": []any{map[string]any{"qDef": map[string]any{"qFieldDefs": []any{"Region"}}}}},
	"qExtraSettings": []any{"first", map[string]any{"a/b": true}},
}

// expGUID matches a GUID in a URL.
const expGUID = `[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`

// expOpenTable opens app on a socket of session c on prefix, creates the
// table object and returns the socket and the object's handle.
func expOpenTable(t *testing.T, sim *Sim, prefix string, c *http.Cookie, user, app string) (*websocket.Conn, int) {
	t.Helper()
	ws := engMustDial(t, sim, prefix, "/app/"+app, c)
	engGreet(t, ws, user)
	if resp := engCall(t, ws, 2, "OpenDoc", -1, app); resp["error"] != nil {
		t.Fatalf("OpenDoc: %v", resp["error"])
	}
	resp := engCall(t, ws, 3, "CreateSessionObject", 1, expTableProps)
	ret, _ := resp["result"].(map[string]any)["qReturn"].(map[string]any)
	h, ok := ret["qHandle"].(float64)
	if !ok {
		t.Fatalf("CreateSessionObject = %v, want a handle", resp)
	}
	return ws, int(h)
}

// expExport calls ExportData on handle with params and returns qUrl.
func expExport(t *testing.T, ws *websocket.Conn, id, handle int, params ...any) string {
	t.Helper()
	resp := engCall(t, ws, id, "ExportData", handle, params...)
	res, ok := resp["result"].(map[string]any)
	if !ok {
		t.Fatalf("ExportData%v = %v, want a result", params, resp)
	}
	if w, ok := res["qWarnings"].([]any); !ok || len(w) != 0 {
		t.Errorf("qWarnings = %v, want []", res["qWarnings"])
	}
	u, _ := res["qUrl"].(string)
	return u
}

// expCSV is the CSV_C file of app made for user.
func expCSV(app, user string) string {
	var b strings.Builder
	b.WriteString("App,User,Region,Amount\r\n")
	for _, r := range [][2]string{{"North", "100"}, {"South", "200"}, {"East", "300"}, {"West", "400"}} {
		fmt.Fprintf(&b, "%s,%s,%s,%s\r\n", app, user, r[0], r[1])
	}
	return b.String()
}

// expSheetCells returns the text of every cell of an xlsx file's first
// sheet, row by row, and fails unless the package is well-formed: every
// part declared, every XML part parses.
func expSheetCells(t *testing.T, body []byte) [][]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("xlsx is not a zip: %v", err)
	}
	parts := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		parts[f.Name] = b
		for d := xml.NewDecoder(bytes.NewReader(b)); ; {
			if _, err := d.Token(); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("part %s is not XML: %v", f.Name, err)
				}
				break
			}
		}
	}
	for _, name := range []string{"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/worksheets/sheet1.xml"} {
		if parts[name] == nil {
			t.Errorf("xlsx has no part %s", name)
		}
	}
	var sheet struct {
		Rows []struct {
			Cells []struct {
				V  string `xml:"v"`
				IS string `xml:"is>t"`
			} `xml:"c"`
		} `xml:"sheetData>row"`
	}
	if err := xml.Unmarshal(parts["xl/worksheets/sheet1.xml"], &sheet); err != nil {
		t.Fatalf("sheet1.xml: %v", err)
	}
	var rows [][]string
	for _, r := range sheet.Rows {
		var row []string
		for _, c := range r.Cells {
			row = append(row, c.V+c.IS)
		}
		rows = append(rows, row)
	}
	return rows
}

func TestEngineSessionObjects(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := login(t, sim, "", `ACME\alice`)

	ws := engMustDial(t, sim, "", "/app/engineData", c)
	engGreet(t, ws, `ACME\alice`)
	if got := engErrorCode(t, engCall(t, ws, 2, "CreateSessionObject", 1, expTableProps)); got != -32602 {
		t.Errorf("CreateSessionObject before OpenDoc: code %d, want -32602 (no doc handle)", got)
	}
	engCall(t, ws, 3, "OpenDoc", -1, engSalesID)

	want := map[string]any{"qReturn": map[string]any{"qType": "GenericObject", "qHandle": float64(2), "qGenericType": "table", "qGenericId": "sales-table"}}
	if diff := cmp.Diff(want, engCall(t, ws, 4, "CreateSessionObject", 1, expTableProps)["result"]); diff != "" {
		t.Errorf("CreateSessionObject (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, engCall(t, ws, 5, "GetObject", 1, "sales-table")["result"]); diff != "" {
		t.Errorf("GetObject (-want +got):\n%s", diff)
	}
	// enigma.js turns a null handle and type into "Object not found".
	if diff := cmp.Diff(map[string]any{"qReturn": map[string]any{"qType": nil, "qHandle": nil}}, engCall(t, ws, 6, "GetObject", 1, "nope")["result"]); diff != "" {
		t.Errorf("GetObject of an unknown id (-want +got):\n%s", diff)
	}

	// Without a qId the object gets one, and the next handle.
	resp := engCall(t, ws, 7, "CreateSessionObject", 1, map[string]any{"qInfo": map[string]any{"qType": "kpi"}})
	ret := resp["result"].(map[string]any)["qReturn"].(map[string]any)
	if ret["qHandle"] != float64(3) || ret["qGenericType"] != "kpi" || len(ret["qGenericId"].(string)) != 6 {
		t.Errorf("CreateSessionObject without qId = %v, want handle 3, type kpi and a generated id", ret)
	}

	errs := []struct {
		name   string
		method string
		handle int
		params []any
		want   int
	}{
		{"same id twice", "CreateSessionObject", 1, []any{expTableProps}, 3},
		{"no qType", "CreateSessionObject", 1, []any{map[string]any{"qInfo": map[string]any{"qId": "x"}}}, -32602},
		{"no qProp", "CreateSessionObject", 1, nil, -32602},
		{"qProp not an object", "CreateSessionObject", 1, []any{"table"}, -32602},
		{"unknown object method", "GetLayoutOfSomething", 2, nil, -32601},
		{"unknown handle", "ExportData", 9, []any{"CSV_C", "/qHyperCubeDef"}, -32602},
	}
	for i, tt := range errs {
		if got := engErrorCode(t, engCall(t, ws, 10+i, tt.method, tt.handle, tt.params...)); got != tt.want {
			t.Errorf("%s: %s error code = %d, want %d", tt.name, tt.method, got, tt.want)
		}
	}

	// Objects belong to their socket.
	other := engMustDial(t, sim, "", "/app/engineData", c)
	engGreet(t, other, `ACME\alice`)
	engCall(t, other, 2, "OpenDoc", -1, engSalesID)
	if got := engErrorCode(t, engCall(t, other, 3, "ExportData", 2, "CSV_C", "/qHyperCubeDef")); got != -32602 {
		t.Errorf("ExportData on another socket's handle: code %d, want -32602", got)
	}
}

func TestExportDataDownload(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	urlRE := regexp.MustCompile(`^/tempcontent/` + expGUID + `/([^/?]+)\?serverNodeId=` + expGUID + `$`)
	tests := []struct {
		prefix, fileType, fileName string
		wantName, wantType         string
	}{
		{"", "CSV_C", "", `\.csv`, "text/csv; charset=utf-8"},
		{"ticket", "CSV_C", "Sales Q3", `Sales%20Q3\.csv`, "text/csv; charset=utf-8"},
		{"ticket", "EXPORT_CSV_T", "tabs.txt", `tabs\.txt`, "text/tab-separated-values; charset=utf-8"},
		{"", "OOXML", "../../etc/passwd", `_\.\._etc_passwd\.xlsx`, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+"/"+tt.fileType+"/"+tt.fileName, func(t *testing.T) {
			c := login(t, sim, tt.prefix, `ACME\alice`)
			ws, h := expOpenTable(t, sim, tt.prefix, c, `ACME\alice`, engSalesID)
			qURL := expExport(t, ws, 10, h, tt.fileType, "/qHyperCubeDef", tt.fileName, "P")

			// Relative to the virtual proxy: no prefix in qUrl.
			m := urlRE.FindStringSubmatch(qURL)
			if m == nil || !regexp.MustCompile(`^(`+expGUID+`)?`+tt.wantName+`$`).MatchString(m[1]) {
				t.Fatalf("qUrl = %q, want /tempcontent/{guid}/{file}?serverNodeId={guid} with file %s", qURL, tt.wantName)
			}
			resp, body := proxyGet(t, sim, vpURL(sim, tt.prefix, qURL), c)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: status %d: %s", qURL, resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			// The attachment is named as the URL's last segment.
			name, err := url.PathUnescape(m[1])
			if err != nil {
				t.Fatal(err)
			}
			disp, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
			if err != nil || disp != "attachment" || params["filename"] != name {
				t.Errorf("Content-Disposition = %q, want an attachment named %q", resp.Header.Get("Content-Disposition"), name)
			}
			switch tt.fileType {
			case "OOXML":
				want := [][]string{{"App", "User", "Region", "Amount"}}
				for _, r := range exportRows {
					want = append(want, []string{"Sales Dashboard", `ACME\alice`, r[0], r[1]})
				}
				if diff := cmp.Diff(want, expSheetCells(t, []byte(body))); diff != "" {
					t.Errorf("xlsx cells (-want +got):\n%s", diff)
				}
			case "EXPORT_CSV_T":
				if want := strings.ReplaceAll(expCSV("Sales Dashboard", `ACME\alice`), ",", "\t"); body != want {
					t.Errorf("body = %q, want %q", body, want)
				}
			default:
				if want := expCSV("Sales Dashboard", `ACME\alice`); body != want {
					t.Errorf("body = %q, want %q", body, want)
				}
			}
		})
	}
}

func TestExportDataOnlyForItsSession(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice := login(t, sim, "ticket", `ACME\alice`)
	ws, h := expOpenTable(t, sim, "ticket", alice, `ACME\alice`, engHandbookID)
	qURL := expExport(t, ws, 10, h, "CSV_C", "/qHyperCubeDef")
	fileURL := vpURL(sim, "ticket", qURL)

	if resp, body := proxyGet(t, sim, fileURL, alice); resp.StatusCode != http.StatusOK || body != expCSV("Company Handbook", `ACME\alice`) {
		t.Fatalf("alice: status %d, body %q; want 200 and her file", resp.StatusCode, body)
	}
	if resp, body := proxyDo(t, sim, http.MethodHead, fileURL, alice); resp.StatusCode != http.StatusOK || body != "" || resp.ContentLength != int64(len(expCSV("Company Handbook", `ACME\alice`))) {
		t.Errorf("HEAD: status %d, length %d, body %q; want 200, the file's length and no body", resp.StatusCode, resp.ContentLength, body)
	}
	if resp, _ := proxyDo(t, sim, http.MethodPost, fileURL, alice); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}

	tests := []struct {
		name   string
		url    string
		cookie *http.Cookie
		want   int
	}{
		{"another user", fileURL, login(t, sim, "ticket", `ACME\carol`), http.StatusNotFound},
		{"another session of the same user", fileURL, login(t, sim, "ticket", `ACME\alice`), http.StatusNotFound},
		{"another file name", strings.Replace(fileURL, ".csv?", ".xlsx?", 1), alice, http.StatusNotFound},
		{"no file name", fileURL[:strings.LastIndex(fileURL, "/")+1], alice, http.StatusNotFound},
		{"a deeper path", strings.Replace(fileURL, ".csv?", ".csv/x?", 1), alice, http.StatusNotFound},
		// qUrl as it is, without the prefix, is the default virtual
		// proxy's, where the ticket virtual proxy's cookie means nothing.
		{"without the prefix", sim.ProxyURL() + qURL, alice, http.StatusFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp, body := proxyGet(t, sim, tt.url, tt.cookie); resp.StatusCode != tt.want {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, body, tt.want)
			}
		})
	}

	// The download ran as alice.
	var got []string
	for _, e := range sim.Events(0) {
		if e.Kind == "http" && e.Method == http.MethodGet && e.Path == "/ticket"+qURL[:strings.Index(qURL, "?")] && e.Status == http.StatusOK {
			got = append(got, e.User)
		}
	}
	if diff := cmp.Diff([]string{`ACME\alice`}, got); diff != "" {
		t.Errorf("users of the successful download (-want +got):\n%s", diff)
	}
}

func TestExportDataEndsWithTheSession(t *testing.T) {
	tests := []struct {
		name          string
		end           func(*Sim) // ends alice's sessions
		wantOldStatus int        // the old cookie's answer afterwards
	}{
		{"idle timeout", func(s *Sim) { s.ExpireUser(`ACME\alice`) }, http.StatusFound},
		{"restart", func(s *Sim) { s.ExpireAll() }, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, _ := newTestSim(t, nil)
			alice := login(t, sim, "", `ACME\alice`)
			ws, h := expOpenTable(t, sim, "", alice, `ACME\alice`, engSalesID)
			fileURL := vpURL(sim, "", expExport(t, ws, 10, h, "OOXML", "", "report"))
			if resp, _ := proxyGet(t, sim, fileURL, alice); resp.StatusCode != http.StatusOK {
				t.Fatalf("before the end: status %d, want 200", resp.StatusCode)
			}
			tt.end(sim)
			if resp, _ := proxyGet(t, sim, fileURL, alice); resp.StatusCode != tt.wantOldStatus {
				t.Errorf("old cookie: status %d, want %d (the session is gone)", resp.StatusCode, tt.wantOldStatus)
			}
			if resp, _ := proxyGet(t, sim, fileURL, login(t, sim, "", `ACME\alice`)); resp.StatusCode != http.StatusNotFound {
				t.Errorf("alice's new session: status %d, want 404 (the file went with the old one)", resp.StatusCode)
			}
		})
	}
}

func TestExportDataServeOnce(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := login(t, sim, "", `ACME\bob`)
	ws, h := expOpenTable(t, sim, "", c, `ACME\bob`, engFinanceID)
	fileURL := vpURL(sim, "", expExport(t, ws, 10, h, "CSV_C", "/qHyperCubeDef", "", "A", true))
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusNotFound} {
		method := http.MethodGet
		if i == 0 {
			method = http.MethodHead // a HEAD does not use up the one download
		}
		if resp, _ := proxyDo(t, sim, method, fileURL, c); resp.StatusCode != want {
			t.Errorf("%s #%d: status %d, want %d", method, i+1, resp.StatusCode, want)
		}
	}
}

func TestExportDataOldestDropped(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := login(t, sim, "", `ACME\carol`)
	ws, h := expOpenTable(t, sim, "", c, `ACME\carol`, engSalesID)
	var urls []string
	for i := range maxExportsPerSession + 1 {
		urls = append(urls, vpURL(sim, "", expExport(t, ws, 10+i, h, "CSV_C", "/qHyperCubeDef")))
	}
	if resp, _ := proxyGet(t, sim, urls[0], c); resp.StatusCode != http.StatusNotFound {
		t.Errorf("oldest of %d exports: status %d, want 404", len(urls), resp.StatusCode)
	}
	for _, u := range []string{urls[1], urls[len(urls)-1]} {
		if resp, _ := proxyGet(t, sim, u, c); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d, want 200", u, resp.StatusCode)
		}
	}
}

func TestExportDataParams(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := login(t, sim, "", `ACME\alice`)
	ws, h := expOpenTable(t, sim, "", c, `ACME\alice`, engSalesID)

	accepted := []struct {
		name   string
		params any
	}{
		{"enum number", []any{0, "/qHyperCubeDef"}},
		{"long names", []any{"EXPORT_OOXML", "", "", "EXPORT_ALL"}},
		{"state number", []any{"CSV_T", "/qHyperCubeDef", "", 1, false}},
		{"named", map[string]any{"qFileType": "CSV_C", "qPath": "/qHyperCubeDef", "qExportState": "A"}},
		{"nested path", []any{"CSV_C", "/qHyperCubeDef/qDimensions/0/qDef"}},
		{"escaped path", []any{"CSV_C", "/qExtraSettings/1/a~1b"}},
		{"no path for OOXML", []any{"OOXML"}},
	}
	for i, tt := range accepted {
		engSendRaw(t, ws, map[string]any{"jsonrpc": "2.0", "id": 100 + i, "method": "ExportData", "handle": h, "params": tt.params})
		if resp := engRead(t, ws); resp["error"] != nil || resp["result"].(map[string]any)["qUrl"] == nil {
			t.Errorf("%s: ExportData%v = %v, want a qUrl", tt.name, tt.params, resp)
		}
	}

	refused := []struct {
		name   string
		params []any
		want   int
	}{
		{"no file type", nil, -32602},
		{"unknown file type", []any{"PDF", "/qHyperCubeDef"}, -32602},
		{"file type out of range", []any{7, "/qHyperCubeDef"}, -32602},
		{"lower-case file type", []any{"csv_c", "/qHyperCubeDef"}, -32602},
		{"parquet", []any{"PARQUET", "/qHyperCubeDef"}, 3004},
		{"CSV without a path", []any{"CSV_C"}, -32602},
		{"path not in the properties", []any{"CSV_C", "/qListObjectDef"}, 4},
		{"path past a leaf", []any{"CSV_C", "/qInfo/qId/x"}, 4},
		{"index out of range", []any{"CSV_C", "/qExtraSettings/2"}, 4},
		{"relative path", []any{"CSV_C", "qHyperCubeDef"}, 4},
		{"unknown state", []any{"CSV_C", "/qHyperCubeDef", "", "X"}, -32602},
		{"serve once not a bool", []any{"CSV_C", "/qHyperCubeDef", "", "P", "yes"}, -32602},
	}
	for i, tt := range refused {
		if got := engErrorCode(t, engCall(t, ws, 200+i, "ExportData", h, tt.params...)); got != tt.want {
			t.Errorf("%s: ExportData%v error code = %d, want %d", tt.name, tt.params, got, tt.want)
		}
	}
}

func TestExportFileName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"report", "report.csv"},
		{"report.csv", "report.csv"},
		{"REPORT.CSV", "REPORT.CSV"},
		{"  Q3 sales  ", "Q3 sales.csv"},
		{`a\b/c:d*e`, "a_b_c_d_e.csv"},
		{"Ärsrapport_2024-Q1", "Ärsrapport_2024-Q1.csv"},
		{"...", ""}, // a GUID
		{strings.Repeat("x", 150), strings.Repeat("x", 100) + ".csv"},
	}
	for _, tt := range tests {
		got := exportFileName(tt.in, ".csv")
		if tt.want == "" {
			if !regexp.MustCompile(`^` + expGUID + `\.csv$`).MatchString(got) {
				t.Errorf("exportFileName(%q) = %q, want a GUID and .csv", tt.in, got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("exportFileName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
