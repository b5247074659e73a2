package qliksim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzXrfkey checks checkXrfkey on arbitrary queries and headers: it
// accepts only one xrfkey parameter (any name case) equal to the one
// X-Qlik-Xrfkey header, of 16 ASCII letters and digits.
func FuzzXrfkey(f *testing.F) {
	for _, s := range [][2]string{
		{"xrfkey=0123456789abcdef", "0123456789abcdef"},
		{"Xrfkey=0123456789ABCDEF", "0123456789ABCDEF"},
		{"xrfkey=0123456789abcdef", "0123456789ABCDEF"},
		{"xrfkey=0123456789abcdef&XRFKEY=0123456789abcdef", "0123456789abcdef"},
		{"xrfkey=0123456789abcde", "0123456789abcde"},
		{"xrfkey=0123456789abcdé", "0123456789abcdé"},
		{"xrfkey=%30123456789abcdef", "0123456789abcdef"},
		{"xrfkey=0123456789abcd%00", "0123456789abcd\x00"},
		{"", ""},
		{"xrfkey=", ""},
		{"a=1;xrfkey=0123456789abcdef", "0123456789abcdef"},
	} {
		f.Add(s[0], s[1], true)
		f.Add(s[0], s[1], false)
	}
	f.Fuzz(func(t *testing.T, rawQuery, hdr string, withHeader bool) {
		r := httptest.NewRequest(http.MethodGet, "/qps/ticket", nil)
		r.URL.RawQuery = rawQuery
		if withHeader {
			r.Header["X-Qlik-Xrfkey"] = []string{hdr}
		}
		if !checkXrfkey(r) {
			return
		}
		if !withHeader {
			t.Fatalf("query %q accepted without the header", rawQuery)
		}
		if len(hdr) != 16 || strings.Trim(hdr, alnum) != "" {
			t.Fatalf("key %q accepted", hdr)
		}
		n := 0
		for k, v := range r.URL.Query() {
			if strings.EqualFold(k, "xrfkey") {
				n += len(v)
				if v[0] != hdr {
					t.Fatalf("query %q accepted with header %q", rawQuery, hdr)
				}
			}
		}
		if n != 1 {
			t.Fatalf("query %q accepted with %d keys", rawQuery, n)
		}
	})
}

// FuzzAttributeJSON decodes arbitrary JSON as an Attribute: a success has
// a non-blank key and encodes back to an equal Attribute; a failure
// leaves the Attribute as it was.
func FuzzAttributeJSON(f *testing.F) {
	for _, s := range []string{
		`{"Group":"Sales"}`, `{"Group":""}`, `{"":"x"}`, `{" ":"x"}`, `{"a":"1","b":"2"}`, `{}`, `[]`, `null`,
		`{"Group":1}`, `{"Group":null}`, `{"Group":{"x":"y"}}`, `"Group"`, `{"a":"1","a":"2"}`,
		`{"\u0000":"\ud800"}`, `{"Gr\u00fcppe":"\n"}`, `{"Group":"Sales"`, ` {"k" : "v"} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a := Attribute{Key: "before", Value: "before"}
		if err := a.UnmarshalJSON(b); err != nil {
			if err.Error() == "" {
				t.Fatal("blank error")
			}
			if a.Key != "before" || a.Value != "before" {
				t.Fatalf("%q: a failed decode changed the attribute to %+v", b, a)
			}
			return
		}
		if strings.TrimSpace(a.Key) == "" {
			t.Fatalf("%q: accepted a blank key", b)
		}
		out, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("%+v does not encode: %v", a, err)
		}
		var back Attribute
		if err := json.Unmarshal(out, &back); err != nil || back != a {
			t.Fatalf("%q -> %+v -> %s -> %+v, %v", b, a, out, back, err)
		}
		// Via encoding/json, as the simulator reads request bodies.
		var via []Attribute
		if err := json.Unmarshal(append(append([]byte("["), b...), ']'), &via); err != nil || len(via) != 1 || via[0] != a {
			t.Fatalf("%q in a list: %+v, %v; want %+v", b, via, err, a)
		}
	})
}
