package proxy

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// rpcScanner reads one JSON-RPC message as a stream, fed the bytes as
// they are relayed (it is an io.Writer), in constant memory whatever the
// message's size. It records only what sensegate decides on, and only
// from the message's top level, where JSON-RPC puts it: whether there is
// an "id" member, the "method" members (matched against match), and, with
// doc set, OpenDoc's document name in "params" (its first item, or its
// qDocName). Text anywhere else (user data: scripts, object properties
// echoed back, padding) is skipped without being looked at.
//
// Member names are compared ignoring ASCII case, as encoding/json does
// (the simulator's decoder; the Engine's is undocumented): for the
// audit, an extra entry costs little and a missed OpenDoc is an evasion.
// Escapes in names and in the values it reads are decoded. Containers
// below the levels it tracks are skipped by counting brackets, so it
// does not reject every malformed message: it is meant for messages
// Qlik's parsers accept, and the top level is read strictly.
type rpcScanner struct {
	// match reports whether a top-level method value is one looked for.
	match func(method []byte) bool
	// doc says whether to read the document name from the params.
	doc bool

	state scanState
	depth int  // tracked containers open: 1 in the top-level object, 2 in its params (with doc)
	deep  int  // containers open below the tracked ones
	esc   bool // the byte before was a backslash in a string
	// params is the kind ('[' or '{') of the params container, at depth 2.
	params byte
	elem   int        // index of the current item of a params array
	member memberName // the top-level member whose value comes next
	inner  memberName // the member of the params object whose value comes next
	str    strKind    // what the string being read is
	buf    []byte     // the raw bytes of a string being captured
	over   bool       // the string had more than the bound of its kind
	quoted bool       // the string has escapes

	// What was found.
	id        bool   // a top-level id member
	idRaw     []byte // its value when a number, at most maxIDRaw bytes (idOver: longer)
	idOver    bool
	inID      bool   // the scalar being read is the id
	matched   int    // top-level method values that match
	unmatched int    // other top-level method members (not strings, too long, not matching)
	method    string // the last method that matched
	docRaw    []byte // the document name, raw (escapes undecoded), at most maxDocRaw bytes
	docCut    bool   // docRaw was cut
}

type scanState uint8

const (
	scanBegin      scanState = iota // before the top-level value
	scanMember                      // after '{': a member name or '}'
	scanNextName                    // after ',' in an object: a member name
	scanColon                       // after a member name
	scanValue                       // a value
	scanValueEnd                    // after '[': a value or ']'
	scanAfter                       // after a value: ',' or the container's end
	scanString                      // in a string at a tracked level
	scanScalar                      // in a number or literal at a tracked level
	scanDeep                        // in containers below the tracked levels
	scanDeepString                  // in a string there
	scanEnd                         // after the top-level object: whitespace only
	scanInvalid                     // not an object, or malformed where tracked: the rest is ignored
	scanDone                        // no notification, and nothing else looked for: the rest is ignored
)

// memberName is what a member name means to the scanner.
type memberName uint8

const (
	nameOther memberName = iota
	nameMethod
	nameID
	nameParams
	nameDocName
)

type strKind uint8

const (
	strSkip   strKind = iota // a string nobody needs
	strName                  // a member name
	strMethod                // a top-level method value
	strDoc                   // the document name
)

// Bounds of the strings the scanner keeps, raw: a name or method longer
// than its bound cannot be any it looks for, even with every character
// escaped (\u0041 is 6 bytes). The names are the longest it looks for;
// methods looked for have at most 32 characters; a document name keeps
// enough for maxAppID bytes decoded even when the cut falls in an escape.
const (
	maxNameRaw   = 6 * len("qDocName")
	maxMethodRaw = 6 * 32
	maxDocRaw    = 6 * (maxAppID + 1)
)

// maxIDRaw bounds the number id an OpenDoc is matched to its answer by.
const maxIDRaw = 20

// reset prepares s for a new message, keeping its buffers.
func (s *rpcScanner) reset() {
	*s = rpcScanner{match: s.match, doc: s.doc, buf: s.buf[:0], docRaw: s.docRaw[:0], idRaw: s.idRaw[:0]}
}

// idNumber returns the top-level id when it was a number of at most
// maxIDRaw bytes, as written ("" otherwise).
func (s *rpcScanner) idNumber() string {
	if !s.id || s.idOver || len(s.idRaw) == 0 {
		return ""
	}
	return string(s.idRaw)
}

// scalarByte records c, a byte of the scalar being read, when it is the id.
func (s *rpcScanner) scalarByte(c byte) {
	if !s.inID {
		return
	}
	if len(s.idRaw) >= maxIDRaw {
		s.idOver = true
		return
	}
	s.idRaw = append(s.idRaw, c)
}

// Write scans p, the next bytes of the message. It never fails.
func (s *rpcScanner) Write(p []byte) (int, error) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch s.state {
		case scanDeep:
			j := bytes.IndexAny(p[i:], `"{}[]`)
			if j < 0 {
				return len(p), nil
			}
			i += j
			switch p[i] {
			case '"':
				s.state = scanDeepString
			case '{', '[':
				s.deep++
			default:
				if s.deep--; s.deep == 0 {
					s.state = scanAfter
				}
			}
		case scanDeepString, scanString:
			if s.esc {
				s.esc = false
				s.capture(p[i : i+1])
				continue
			}
			j := stringEnd(p[i:])
			if j < 0 {
				s.capture(p[i:])
				return len(p), nil
			}
			s.capture(p[i : i+j])
			i += j
			if p[i] == '\\' {
				s.esc, s.quoted = true, true
				s.capture(p[i : i+1])
				continue
			}
			if s.state == scanDeepString {
				s.state = scanDeep
			} else {
				s.endString()
			}
		case scanEnd:
			if !isSpace(c) {
				s.state = scanInvalid
			}
		case scanInvalid, scanDone:
			return len(p), nil
		case scanScalar:
			if isScalarByte(c) {
				s.scalarByte(c)
				continue
			}
			s.state, s.inID = scanAfter, false
			i-- // c ends the scalar: read it after the value
		default:
			if !isSpace(c) {
				s.structural(c)
			}
		}
	}
	return len(p), nil
}

// structural handles a byte other than whitespace at a tracked level,
// outside strings and scalars.
func (s *rpcScanner) structural(c byte) {
	switch s.state {
	case scanBegin:
		if c != '{' {
			s.state = scanInvalid
			return
		}
		s.depth, s.state = 1, scanMember
	case scanMember, scanNextName:
		switch {
		case c == '"':
			s.beginString(strName)
		case c == '}' && s.state == scanMember:
			s.close(c)
		default:
			s.state = scanInvalid
		}
	case scanColon:
		if c != ':' {
			s.state = scanInvalid
			return
		}
		s.state = scanValue
	case scanValueEnd:
		if c == ']' {
			s.close(c)
			return
		}
		s.value(c)
	case scanValue:
		s.value(c)
	case scanAfter:
		switch {
		case c == ',' && s.depth == 2 && s.params == '[':
			s.elem++
			s.state = scanValue
		case c == ',':
			s.state = scanNextName
		case c == '}' || c == ']':
			s.close(c)
		default:
			s.state = scanInvalid
		}
	}
}

// value starts the value that begins with c at a tracked level.
func (s *rpcScanner) value(c byte) {
	role := s.member
	if s.depth == 2 {
		role = nameOther
		if s.params == '[' && s.elem == 0 || s.params == '{' && s.inner == nameDocName {
			role = nameDocName
		}
	} else if role == nameID {
		s.id = true
		// The last id counts, as for encoding/json.
		s.idRaw, s.idOver, s.inID = s.idRaw[:0], false, false
		if c == '-' || '0' <= c && c <= '9' {
			s.inID = true
			s.scalarByte(c)
		}
	} else if role == nameParams {
		s.docRaw, s.docCut = s.docRaw[:0], false // the last params counts
	}
	switch {
	case c == '"':
		switch role {
		case nameMethod:
			s.beginString(strMethod)
		case nameDocName:
			s.beginString(strDoc)
		default:
			s.beginString(strSkip)
		}
		return
	case role == nameMethod:
		s.unmatched++ // a method that is not a string
	}
	switch {
	case (c == '{' || c == '[') && s.depth == 1 && role == nameParams && s.doc:
		s.depth, s.params, s.elem, s.inner = 2, c, 0, nameOther
		s.state = scanMember
		if c == '[' {
			s.state = scanValueEnd
		}
	case c == '{' || c == '[':
		s.deep, s.state = 1, scanDeep
	case isScalarByte(c):
		s.state = scanScalar
	default:
		s.state = scanInvalid
	}
	s.stopIfDone()
}

// stopIfDone ends the scan of a message that is no notification when
// nothing else is looked for (no doc): an Engine answer names its id
// first, and the rest of it need not be read.
func (s *rpcScanner) stopIfDone() {
	if !s.doc && (s.id || s.unmatched > 0) && s.state != scanInvalid {
		s.state = scanDone
	}
}

// close ends the tracked container at s.depth with c.
func (s *rpcScanner) close(c byte) {
	want := byte('}')
	if s.depth == 2 && s.params == '[' {
		want = ']'
	}
	if c != want {
		s.state = scanInvalid
		return
	}
	if s.depth--; s.depth == 0 {
		s.state = scanEnd
		return
	}
	s.state = scanAfter
}

func (s *rpcScanner) beginString(k strKind) {
	s.str, s.buf, s.over, s.quoted = k, s.buf[:0], false, false
	s.state = scanString
}

// capture keeps b, part of the current string, when its kind is kept.
func (s *rpcScanner) capture(b []byte) {
	if s.state != scanString || s.str == strSkip || s.over {
		return
	}
	bound := maxNameRaw
	switch s.str {
	case strMethod:
		bound = maxMethodRaw
	case strDoc:
		bound = maxDocRaw
	}
	if n := bound - len(s.buf); len(b) > n {
		b, s.over = b[:n], true
	}
	if s.buf == nil {
		s.buf = make([]byte, 0, maxMethodRaw)
	}
	s.buf = append(s.buf, b...)
}

// endString acts on the string just read at a tracked level.
func (s *rpcScanner) endString() {
	s.state = scanAfter
	switch s.str {
	case strName:
		s.state = scanColon
		name, ok := s.unescape()
		id := nameOther
		switch {
		case !ok || s.over:
		case s.depth == 2 && asciiEqualFold(name, "qDocName"):
			id = nameDocName
		case s.depth == 2:
		case asciiEqualFold(name, "method"):
			id = nameMethod
		case asciiEqualFold(name, "id"):
			id = nameID
		case asciiEqualFold(name, "params"):
			id = nameParams
		}
		if s.depth == 2 {
			s.inner = id
		} else {
			s.member = id
		}
	case strMethod:
		m, ok := s.unescape()
		if ok && !s.over && s.match(m) {
			s.matched++
			s.method = string(m)
		} else {
			s.unmatched++
			s.stopIfDone()
		}
	case strDoc:
		s.docRaw = append(s.docRaw[:0], s.buf...)
		s.docCut = s.over
	}
}

// notification reports whether the whole message read was a JSON-RPC
// notification of a method looked for: a top-level object with a
// matching method, no other, and no id.
func (s *rpcScanner) notification() bool {
	return s.state == scanEnd && s.matched > 0 && s.unmatched == 0 && !s.id
}

// ruledOut reports whether what was read so far shows the message is no
// such notification, however it goes on.
func (s *rpcScanner) ruledOut() bool {
	return s.state == scanInvalid || s.state == scanDone || s.id || s.unmatched > 0
}

// docName returns the document name read from the params of a message
// with a matching method, decoded and cut to maxAppID bytes ("" when
// there was none).
func (s *rpcScanner) docName() string {
	if s.matched == 0 {
		return ""
	}
	raw := s.docRaw
	name, ok := decodeString(raw)
	// A cut name may end inside an escape: drop its start.
	for i := 0; !ok && s.docCut && i < 6 && len(raw) > 0; i++ {
		raw = raw[:len(raw)-1]
		name, ok = decodeString(raw)
	}
	if !ok {
		return ""
	}
	if len(name) > maxAppID {
		n := maxAppID
		for n > 0 && !utf8.RuneStart(name[n]) {
			n--
		}
		name = name[:n]
	}
	return string(name)
}

// unescape decodes the string just captured; it reports false when it
// is not valid. Invalid UTF-8 is left as it is unless there are escapes
// (see decodeString): no name looked for has any.
func (s *rpcScanner) unescape() ([]byte, bool) {
	if !s.quoted {
		return s.buf, true
	}
	return decodeString(s.buf)
}

// decodeString decodes the raw contents of a JSON string as
// encoding/json does, invalid UTF-8 replaced.
func decodeString(raw []byte) ([]byte, bool) {
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return raw, true
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	var s string
	if json.Unmarshal(q, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// asciiEqualFold reports whether b equals s ignoring ASCII case only
// (bytes.EqualFold would also fold ſ to s and K to k).
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// stringEnd returns the index in p of the first quote or backslash, -1
// if none. Short strings (member names, most values) end within a few
// bytes; on the long strings of user data two vectorised searches beat a
// loop, or one bytes.IndexAny.
func stringEnd(p []byte) int {
	const short = 16
	for i := 0; i < len(p) && i < short; i++ {
		if c := p[i]; c == '"' || c == '\\' {
			return i
		}
	}
	if len(p) <= short {
		return -1
	}
	rest := p[short:]
	q := bytes.IndexByte(rest, '"')
	in := rest
	if q >= 0 {
		in = rest[:q]
	}
	if b := bytes.IndexByte(in, '\\'); b >= 0 {
		return short + b
	}
	if q < 0 {
		return -1
	}
	return short + q
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isScalarByte reports whether c may be part of a number or of true,
// false and null.
func isScalarByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '+' || c == '.'
}
