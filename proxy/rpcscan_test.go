package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/zap"
)

// rpcScanTests are messages with what the two scanners must find in them:
// fatal, a notification that ends the session (the Qlik side's scanner);
// open and doc, an OpenDoc request and its document name (the audit's).
var rpcScanTests = []struct {
	name  string
	msg   string
	fatal bool
	open  bool
	doc   string
}{
	// Qlik's notifications, as QPS sends them and in other shapes.
	{name: "timed out, Qlik's form", msg: `{"jsonrpc":"2.0","method":"OnSessionTimedOut","params":{"severity":"fatal","timestamp":"2025-01-01T00:00:00Z","message":"Session timed out due to inactivity"}}`, fatal: true},
	{name: "logged out, no params", msg: `{"jsonrpc":"2.0","method":"OnSessionLoggedOut"}`, fatal: true},
	{name: "closed, params first", msg: `{"params":{"severity":"fatal","message":"` + strings.Repeat("m", 400) + `"},"jsonrpc":"2.0","method":"OnSessionClosed"}`, fatal: true},
	{name: "closed, spaced out", msg: " {\n\t\"method\" : \"OnSessionClosed\" ,\r\n \"params\" : [ ] }\n", fatal: true},
	{name: "closed, escaped method", msg: `{"method":"\u004fnSessionClosed"}`, fatal: true},
	{name: "not fatal", msg: `{"jsonrpc":"2.0","method":"OnConnected","params":{"qSessionState":"SESSION_CREATED"}}`},
	{name: "method and id", msg: `{"jsonrpc":"2.0","id":6,"method":"OnSessionClosed","params":{}}`},
	{name: "id after the method", msg: `{"method":"OnSessionClosed","id":null}`},
	{name: "id in another case", msg: `{"method":"OnSessionClosed","ID":1}`},
	{name: "two methods", msg: `{"method":"OnSessionClosed","method":"OnConnected"}`},
	{name: "method not a string", msg: `{"method":["OnSessionClosed"]}`},
	{name: "result with a nested method", msg: `{"jsonrpc":"2.0","id":5,"result":{"qProp":{"method":"OnSessionClosed"}}}`},
	{name: "nested method, no id", msg: `{"jsonrpc":"2.0","change":[1],"params":{"method":"OnSessionClosed"}}`},
	{name: "method text in a string", msg: `{"jsonrpc":"2.0","id":5,"result":{"qScript":"\"method\":\"OnSessionClosed\""}}`},
	{name: "cut short", msg: `{"jsonrpc":"2.0","method":"OnSessionClosed"`},
	{name: "trailing bytes", msg: `{"method":"OnSessionClosed"} x`},
	{name: "in an array", msg: `[{"method":"OnSessionTimedOut"}]`},
	{name: "not JSON", msg: `"method":"OnSessionClosed"`},
	{name: "empty", msg: ``},
	{name: "mismatched brackets", msg: `{"method":"OnSessionClosed"]`},

	// Client requests.
	{name: "enigma.js OpenDoc", msg: `{"delta":false,"handle":-1,"method":"OpenDoc","params":["app-1","","","",false],"id":2,"jsonrpc":"2.0"}`, open: true, doc: "app-1"},
	{name: "params before method", msg: `{"jsonrpc":"2.0","id":2,"params":["app-2"],"method":"OpenDoc"}`, open: true, doc: "app-2"},
	{name: "named params", msg: `{"id":2,"method":"OpenDoc","params":{"qUserName":"u","qPassword":"hunter2","qDocName":"app-3"}}`, open: true, doc: "app-3"},
	{name: "qDocName after a long password", msg: `{"id":2,"method":"OpenDoc","params":{"qPassword":"` + strings.Repeat("p", 5000) + `","qDocName":"app-4"}}`, open: true, doc: "app-4"},
	{name: "padded before the method", msg: `{"id":2,"pad":"` + strings.Repeat("x", 70<<10) + `","method":"OpenDoc","params":["app-5"]}`, open: true, doc: "app-5"},
	{name: "whitespace before the method", msg: "{" + strings.Repeat(" \n", 600) + `"method":"OpenDoc","params":["app-6"]}`, open: true, doc: "app-6"},
	{name: "escaped method and name", msg: `{"\u006dethod":"Open\u0044oc","params":["app\u002d7"]}`, open: true, doc: "app-7"},
	{name: "member names in upper case", msg: `{"METHOD":"OpenDoc","PARAMS":{"QDOCNAME":"app-8"}}`, open: true, doc: "app-8"},
	{name: "first item not a string", msg: `{"method":"OpenDoc","params":[["app-9"],"x"]}`, open: true},
	{name: "cut in the params", msg: `{"method":"OpenDoc","params":["app-10","user","pass`, open: true, doc: "app-10"},
	{name: "cut in the name", msg: `{"method":"OpenDoc","params":["app-`, open: true},
	{name: "the last params count", msg: `{"method":"OpenDoc","params":["a"],"params":{"qDocName":"b"}}`, open: true, doc: "b"},
	{name: "OpenDoc in a string value", msg: `{"id":3,"method":"SetScript","params":["\"method\":\"OpenDoc\""]}`},
	{name: "OpenDoc nested", msg: `{"id":3,"params":{"method":"OpenDoc"},"method":"Other"}`},
	{name: "OpenDoc as a member name", msg: `{"id":3,"method":"Other","params":{"OpenDoc":"app"}}`},
	{name: "long name cut", msg: `{"method":"OpenDoc","params":["` + strings.Repeat("a", 300) + `"]}`, open: true, doc: strings.Repeat("a", maxAppID)},
	{name: "long escaped name cut", msg: `{"method":"OpenDoc","params":["` + strings.Repeat(`\u0062`, 300) + `"]}`, open: true, doc: strings.Repeat("b", maxAppID)},
}

// scan runs a fresh scanner over msg, fed in pieces of at most chunk
// bytes (0: all at once).
func scan(match func([]byte) bool, doc bool, msg []byte, chunk int) *rpcScanner {
	s := &rpcScanner{match: match, doc: doc}
	s.reset()
	if chunk <= 0 {
		chunk = len(msg) + 1
	}
	for len(msg) > 0 {
		n := min(chunk, len(msg))
		s.Write(msg[:n])
		msg = msg[n:]
	}
	return s
}

func TestRPCScanner(t *testing.T) {
	for _, tc := range rpcScanTests {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1, 7, 256} {
				if got := scan(isFatalMethod, false, []byte(tc.msg), chunk).notification(); got != tc.fatal {
					t.Errorf("fatal notification (chunks of %d) = %v, want %v", chunk, got, tc.fatal)
				}
				s := scan(isOpenDocMethod, true, []byte(tc.msg), chunk)
				if open, doc := s.matched > 0, s.docName(); open != tc.open || doc != tc.doc {
					t.Errorf("OpenDoc (chunks of %d) = %v %q, want %v %q", chunk, open, doc, tc.open, tc.doc)
				}
			}
		})
	}
}

// A scanner is reused from message to message: nothing of one leaks into
// the next.
func TestRPCScannerReset(t *testing.T) {
	s := &rpcScanner{match: isOpenDocMethod, doc: true}
	s.Write([]byte(`{"method":"OpenDoc","params":["app-1"]`))
	s.reset()
	s.Write([]byte(`{"id":1,"method":"GetLayout","params":[]}`))
	if s.matched != 0 || s.docName() != "" || s.notification() {
		t.Errorf("after reset: matched %d, doc %q", s.matched, s.docName())
	}
}

// FuzzRPCScanner feeds arbitrary messages to both scanners, whole and in
// pieces. It never panics, the pieces never change the outcome, a name
// is never longer than maxAppID, and on valid JSON the scanners agree
// with encoding/json read by the same rules (see oracleScan).
func FuzzRPCScanner(f *testing.F) {
	for _, tc := range rpcScanTests {
		f.Add([]byte(tc.msg), uint16(7))
	}
	for _, tc := range parseOpenDocTests {
		f.Add([]byte(tc.msg), uint16(1))
	}
	f.Fuzz(func(t *testing.T, msg []byte, chunk uint16) {
		type outcome struct {
			fatal, open, id bool
			doc             string
		}
		run := func(chunk int) outcome {
			fs := scan(isFatalMethod, false, msg, chunk)
			os := scan(isOpenDocMethod, true, msg, chunk) // reads to the end: its id is the message's
			return outcome{fatal: fs.notification(), open: os.matched > 0, id: os.id, doc: os.docName()}
		}
		whole := run(0)
		for _, c := range []int{int(chunk), 1} {
			if got := run(c); got != whole {
				t.Fatalf("%q in chunks of %d: %+v, whole: %+v", msg, c, got, whole)
			}
		}
		if len(whole.doc) > maxAppID {
			t.Fatalf("%q: name of %d bytes", msg, len(whole.doc))
		}
		if !whole.open && whole.doc != "" {
			t.Fatalf("%q: name %q without OpenDoc", msg, whole.doc)
		}
		if !json.Valid(msg) {
			return
		}
		want, docComparable := oracleScan(t, msg)
		if !docComparable {
			want.doc = whole.doc
		}
		if got := (oracle{whole.fatal, whole.open, whole.id, whole.doc}); got != want {
			t.Fatalf("%q: scanned %+v, encoding/json says %+v", msg, got, want)
		}
	})
}

// oracle is what encoding/json finds in a valid message.
type oracle struct {
	fatal, open, id bool
	doc             string
}

// oracleScan reads msg, valid JSON, with encoding/json by the scanner's
// rules: top-level members only, names in any ASCII case, the last params
// counts, its first item or its last string qDocName. docComparable is
// false when the name is longer raw than the scanner keeps.
func oracleScan(t *testing.T, msg []byte) (o oracle, docComparable bool) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return o, true
	}
	matched, unmatched := 0, 0
	docComparable = true
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("valid %q: %v", msg, err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("valid %q: %v", msg, err)
		}
		switch name := []byte(tok.(string)); {
		case asciiEqualFold(name, "id"):
			o.id = true
		case asciiEqualFold(name, "method"):
			var m string
			switch {
			case json.Unmarshal(raw, &m) != nil:
				unmatched++
			case isOpenDocMethod([]byte(m)):
				o.open = true
				unmatched++
			case isFatalMethod([]byte(m)):
				matched++
			default:
				unmatched++
			}
		case asciiEqualFold(name, "params"):
			var rawName json.RawMessage
			o.doc, rawName = oracleDocName(raw)
			docComparable = len(rawName) <= maxDocRaw+2
		}
	}
	o.fatal = matched > 0 && unmatched == 0 && !o.id
	if !o.open {
		o.doc = ""
	}
	return o, docComparable
}

// oracleDocName returns the document name of OpenDoc params, cut as the
// scanner cuts it, and its raw JSON string.
func oracleDocName(params json.RawMessage) (string, json.RawMessage) {
	var raw json.RawMessage
	var items []json.RawMessage
	switch {
	case json.Unmarshal(params, &items) == nil:
		if len(items) > 0 {
			raw = items[0]
		}
	case json.Unmarshal(params, &map[string]json.RawMessage{}) == nil:
		dec := json.NewDecoder(bytes.NewReader(params))
		dec.Token()
		for dec.More() {
			k, _ := dec.Token()
			var v json.RawMessage
			dec.Decode(&v)
			if asciiEqualFold([]byte(k.(string)), "qDocName") && len(v) > 0 && v[0] == '"' {
				raw = v
			}
		}
	}
	var name string
	if json.Unmarshal(raw, &name) != nil {
		return "", raw
	}
	if len(name) > maxAppID {
		n := maxAppID
		for n > 0 && !utf8.RuneStart(name[n]) {
			n--
		}
		name = name[:n]
	}
	return name, raw
}

// watchBenchMessages are the messages of BenchmarkWatch: Engine answers
// (id first, as the Engine writes them) and client requests.
func watchBenchMessages() []struct {
	name   string
	toQlik bool
	msg    []byte
} {
	answer := func(size int) []byte {
		head := `{"jsonrpc":"2.0","id":7,"result":{"qLayout":"`
		return []byte(head + strings.Repeat("x", size-len(head)-3) + `"}}`)
	}
	request := func(size int) []byte {
		head := `{"jsonrpc":"2.0","id":8,"method":"SetScript","handle":1,"params":["`
		return []byte(head + strings.Repeat("x", size-len(head)-3) + `"]}`)
	}
	return []struct {
		name   string
		toQlik bool
		msg    []byte
	}{
		{"qlik-1KiB", false, answer(1 << 10)},
		{"qlik-256KiB", false, answer(256 << 10)},
		{"client-request", true, benchRequest},
		{"client-256KiB", true, request(256 << 10)},
	}
}

// BenchmarkWatch measures what the relay spends per message on looking at
// it, besides copying it (to io.Discard here): Qlik's messages through the
// session watcher, client messages through the audit's OpenDoc watcher.
func BenchmarkWatch(b *testing.B) {
	p := &wsPair{rl: &relay{h: &Handler{log: zap.NewNop(), audit: NewAudit(zap.NewNop())}}}
	for _, bc := range watchBenchMessages() {
		b.Run(bc.name, func(b *testing.B) {
			var w watcher = &fatalWatcher{p: p, s: rpcScanner{match: isFatalMethod}}
			if bc.toQlik {
				w = newOpenDocWatcher(p)
			}
			r := bytes.NewReader(nil)
			b.SetBytes(int64(len(bc.msg)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(bc.msg)
				rest, head, err := w.start(r)
				io.Discard.Write(head)
				if err == nil {
					io.Copy(io.Discard, rest)
				}
				w.end()
			}
		})
	}
}
