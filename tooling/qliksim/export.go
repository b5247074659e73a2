package qliksim

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Exports. GenericObject.ExportData writes the object's data to a file
// and answers {"qUrl":"/tempcontent/{guid}/{file}?serverNodeId=…",
// "qWarnings":[]} [M2]; the client then downloads qUrl from the Qlik
// proxy, under the virtual proxy prefix, with its session cookie.
//
// The qUrl does not carry the virtual proxy prefix: it is relative to the
// virtual proxy. QSEoW's own downloadPath of an app export has this shape
// (QRS "App: Export app": /tempcontent/{guid}/{name}?serverNodeId={guid}),
// and so does the qUrl clients report from ExportData on a virtual proxy
// without a prefix (qlik-demo-team/qdt-components#189). On a prefixed
// virtual proxy, extensions that used qUrl as it is got 404 until they put
// the prefix in front themselves (stefanwalther/sense-export#3, whose fix
// adds the prefix of the page's path; vizlib/ClimberCustomReport#72;
// ClimberAB/ClimberContainer#21): the Engine does not add it. URLs that
// do carry the prefix come from the Capability API's table.exportData,
// which builds an absolute URL itself [M2] (qdt-components#217).
//
// The simulator keeps each file with the QPS session that made it and
// serves it at GET /{prefix}/tempcontent/{guid}/{file} to that session
// only: another session, of another user or of the same one, gets 404,
// and so does a new session after the old one ended (its files go with
// it). QSEoW documents only that an exported app "can only be downloaded
// by the user that initiated the export" (QRS "App: Export app"); one
// session is the stricter choice.

// maxExportsPerSession bounds the files one session keeps; the oldest go
// first. QSEoW's own limit is not documented.
const maxExportsPerSession = 64

// exportRows are the Data table of every app's generated load script
// (generateScript), and so the data every export holds.
var exportRows = [][2]string{{"North", "100"}, {"South", "200"}, {"East", "300"}, {"West", "400"}}

// exportFormat is one NxExportFileType the simulator writes.
type exportFormat struct {
	ext, contentType string
	// comma separates CSV fields; 0 means OOXML.
	comma rune
}

// exportFormats are the file types the simulator writes, by their
// exportFileTypes short name; it does not write PARQUET. The extensions
// and Content-Types are the simulator's: QSEoW's are not documented,
// beyond an OOXML export's qUrl ending in .xlsx (qdt-components#189).
var exportFormats = map[string]exportFormat{
	"CSV_C": {".csv", "text/csv; charset=utf-8", ','},
	"CSV_T": {".txt", "text/tab-separated-values; charset=utf-8", '\t'},
	"OOXML": {".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", 0},
}

// tempFile is an export kept for the session that made it.
type tempFile struct {
	dir, name   string // the URL's {guid} and {file}
	contentType string
	body        []byte
	serveOnce   bool // qServeOnce: gone after its first download
}

// exportResult is ExportData's answer. qWarnings are warning codes (1000
// when a file was truncated, per the Engine JSON API's ExportData page);
// the simulator's small files never have any.
type exportResult struct {
	URL      string `json:"qUrl"`
	Warnings []int  `json:"qWarnings"`
}

// exportData implements GenericObject.ExportData(qFileType, qPath,
// qFileName, qExportState, qServeOnce). The file names the app and the
// user it was made for, so that a test can tell whose file it got.
//
// qPath is required for the CSV types (as the Qlik .NET SDK's ExportData
// reference says) and, when given, must name a member of the object's properties (e.g.
// /qHyperCubeDef); the Engine's answer to a wrong path is not documented,
// the simulator answers LOCERR_GENERIC_INVALID_PATH. qFileName, "the name
// of the exported file after download from browser" (.NET SDK), becomes the URL's
// file name (with the type's extension added when missing); without it
// the name is a GUID, as in the qUrls clients report. qExportState ("P"
// or "A") changes nothing: the simulator has no selections.
func (c *engineConn) exportData(o *engineObject, p rpcParams) (any, *rpcError) {
	var rawType, rawState json.RawMessage
	var qPath, qFileName string
	var serveOnce bool
	if err := p.get(0, "qFileType", &rawType); err != nil {
		return nil, err
	}
	typeName, ok := exportFileTypes.parse(rawType)
	if !ok {
		return nil, errInvalidParams("qFileType")
	}
	for i, a := range []struct {
		name string
		dst  any
	}{{"qPath", &qPath}, {"qFileName", &qFileName}, {"qExportState", &rawState}, {"qServeOnce", &serveOnce}} {
		if err := p.get(i+1, a.name, a.dst); err != nil {
			return nil, err
		}
	}
	if len(rawState) > 0 {
		if _, ok := exportStates.parse(rawState); !ok {
			return nil, errInvalidParams("qExportState")
		}
	}
	f, ok := exportFormats[typeName]
	if !ok {
		// PARQUET: what an Engine that cannot write it answers is not
		// documented.
		return nil, &rpcError{Code: locerrFileFormatUnsupported, Parameter: typeName, Message: "File format unsupported"}
	}
	switch {
	case qPath == "" && f.comma != 0:
		return nil, errInvalidParams("qPath")
	case qPath != "" && !hasPointer(o.props, qPath):
		return nil, &rpcError{Code: locerrGenericInvalidPath, Parameter: qPath, Message: "Invalid path"}
	}
	sess := c.pr.sess
	rows := [][]string{{"App", "User", "Region", "Amount"}}
	for _, r := range exportRows {
		rows = append(rows, []string{c.doc.app.Name, sess.user.String(), r[0], r[1]})
	}
	body, err := f.write(rows)
	if err != nil {
		return nil, &rpcError{Code: locerrGenericInternalError, Parameter: err.Error(), Message: "Internal error"}
	}
	file := &tempFile{dir: newGUID(), name: exportFileName(qFileName, f.ext), contentType: f.contentType, body: body, serveOnce: serveOnce}
	if !c.s.st.addTempFile(sess.id, file) {
		// The session ended meanwhile; its socket is being closed.
		return nil, &rpcError{Code: locerrGenericConnectionLost, Parameter: "session ended", Message: "Connection lost"}
	}
	return exportResult{
		URL:      "/tempcontent/" + file.dir + "/" + url.PathEscape(file.name) + "?serverNodeId=" + c.s.nodeID,
		Warnings: []int{},
	}, nil
}

// engineEnum is an enum parameter of the Engine API: its values' short
// names in the schema's numeric order, and their long (schema) names. A
// value may be sent as either name or as its number; the names are
// compared exactly (whether the Engine ignores case is not documented).
type engineEnum struct{ short, long []string }

var (
	// exportFileTypes is NxExportFileType (schema ExportFileType:
	// EXPORT_CSV_C 0, EXPORT_CSV_T 1, EXPORT_OOXML 2, EXPORT_PARQUET 3).
	exportFileTypes = engineEnum{
		short: []string{"CSV_C", "CSV_T", "OOXML", "PARQUET"},
		long:  []string{"EXPORT_CSV_C", "EXPORT_CSV_T", "EXPORT_OOXML", "EXPORT_PARQUET"},
	}
	// exportStates is NxExportState (schema ExportState: EXPORT_POSSIBLE
	// 0, EXPORT_ALL 1).
	exportStates = engineEnum{short: []string{"P", "A"}, long: []string{"EXPORT_POSSIBLE", "EXPORT_ALL"}}
)

// parse returns the short name of the value raw holds.
func (e engineEnum) parse(raw json.RawMessage) (string, bool) {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		if n >= 0 && n < len(e.short) {
			return e.short[n], true
		}
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	for i := range e.short {
		if s == e.short[i] || s == e.long[i] {
			return e.short[i], true
		}
	}
	return "", false
}

// hasPointer reports whether the JSON pointer path (RFC 6901) names a
// member of props.
func hasPointer(props map[string]any, path string) bool {
	if !strings.HasPrefix(path, "/") {
		return false
	}
	var cur any = props
	for _, tok := range strings.Split(path[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				return false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return false
			}
			cur = v[i]
		default:
			return false
		}
	}
	return true
}

// exportFileName is the URL file name of an export: qFileName with
// characters outside letters, digits, space and ._- replaced by "_", at
// most 100 characters, and ext appended unless it ends with it; a GUID
// plus ext when qFileName is empty.
func exportFileName(qFileName, ext string) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.TrimSpace(qFileName) {
		if n++; n > 100 {
			break
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" ._-", r) {
			b.WriteRune(r)
		} else {
			b.WriteRune('_')
		}
	}
	name := strings.Trim(b.String(), ". ")
	if name == "" {
		return newGUID() + ext
	}
	if !strings.HasSuffix(strings.ToLower(name), ext) {
		name += ext
	}
	return name
}

// write encodes rows in f's format.
func (f exportFormat) write(rows [][]string) ([]byte, error) {
	if f.comma == 0 {
		return writeXLSX(rows)
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Comma = f.comma
	w.UseCRLF = true
	if err := w.WriteAll(rows); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// xlsxTime is the modification time of every part of a generated
// workbook, so that the same rows give the same bytes.
var xlsxTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// writeXLSX writes rows as the smallest workbook Office Open XML
// (ECMA-376) allows: content types, the package relationship, a workbook
// with one sheet and the sheet, with numbers as numbers and every other
// cell as an inline string. Up to 26 columns.
func writeXLSX(rows [][]string) ([]byte, error) {
	var sheet strings.Builder
	sheet.WriteString(xml.Header + `<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>`)
	for i, row := range rows {
		fmt.Fprintf(&sheet, `<row r="%d">`, i+1)
		for j, cell := range row {
			ref := fmt.Sprintf("%c%d", 'A'+j, i+1)
			if _, err := strconv.ParseFloat(cell, 64); err == nil {
				fmt.Fprintf(&sheet, `<c r="%s"><v>%s</v></c>`, ref, cell)
				continue
			}
			fmt.Fprintf(&sheet, `<c r="%s" t="inlineStr"><is><t>`, ref)
			xml.EscapeText(&sheet, []byte(cell))
			sheet.WriteString(`</t></is></c>`)
		}
		sheet.WriteString(`</row>`)
	}
	sheet.WriteString(`</sheetData></worksheet>`)

	const rels = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
	parts := []struct{ name, body string }{
		{"[Content_Types].xml", xml.Header + `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">` +
			`<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>` +
			`<Default Extension="xml" ContentType="application/xml"/>` +
			`<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>` +
			`<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>` +
			`</Types>`},
		{"_rels/.rels", xml.Header + `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
			`<Relationship Id="rId1" Type="` + rels + `/officeDocument" Target="xl/workbook.xml"/></Relationships>`},
		{"xl/workbook.xml", xml.Header + `<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="` + rels + `">` +
			`<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>`},
		{"xl/_rels/workbook.xml.rels", xml.Header + `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
			`<Relationship Id="rId1" Type="` + rels + `/worksheet" Target="worksheets/sheet1.xml"/></Relationships>`},
		{"xl/worksheets/sheet1.xml", sheet.String()},
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range parts {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: p.name, Method: zip.Deflate, Modified: xlsxTime})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write([]byte(p.body)); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// addTempFile keeps f with session id and reports false when the session
// is gone. Over maxExportsPerSession files, the oldest is dropped.
func (st *state) addTempFile(id string, f *tempFile) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.sessions[id]
	if !ok {
		return false
	}
	if len(s.exports) >= maxExportsPerSession {
		s.exports = append(s.exports[:0], s.exports[1:]...)
	}
	s.exports = append(s.exports, f)
	return true
}

// tempFile returns session id's file dir/name; consume removes a
// qServeOnce file as it is returned.
func (st *state) tempFile(id, dir, name string, consume bool) (*tempFile, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.sessions[id]
	if !ok {
		return nil, false
	}
	for i, f := range s.exports {
		if f.dir == dir && f.name == name {
			if consume && f.serveOnce {
				s.exports = append(s.exports[:i], s.exports[i+1:]...)
			}
			return f, true
		}
	}
	return nil, false
}

// serveTempContent serves GET and HEAD /{prefix}/tempcontent/{guid}/{file}
// to the session that made the export, with the file type's Content-Type
// and a Content-Disposition attachment naming the file. Which headers
// QPS sends on a download is not documented; these are what a browser
// needs to save the file under its name.
func (s *Sim) serveTempContent(w http.ResponseWriter, r *http.Request, pr *proxyRequest) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	dir, name, ok := strings.Cut(strings.TrimPrefix(pr.path, "/tempcontent/"), "/")
	if !ok || dir == "" || name == "" || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	f, ok := s.st.tempFile(pr.sess.id, dir, name, r.Method == http.MethodGet)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.name}))
	w.Header().Set("Content-Length", strconv.Itoa(len(f.body)))
	if r.Method == http.MethodGet {
		w.Write(f.body)
	}
}
