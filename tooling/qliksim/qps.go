package qliksim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// maxAPIBody bounds QPS and QRS request bodies. Attributes are capped by
// the 16 KB Windows HTTP header limit downstream; 1 MiB is ample.
const maxAPIBody = 1 << 20

// checkXrfkey applies Qlik's Xrfkey rules: the query parameter (any name
// case) and the X-Qlik-Xrfkey header must both be present, equal, and 16
// characters of [0-9a-zA-Z]. Values are compared case-sensitively (open
// question 3: the stricter choice).
func checkXrfkey(r *http.Request) bool {
	var q string
	found := false
	for k, v := range r.URL.Query() {
		if strings.EqualFold(k, "xrfkey") {
			if found || len(v) != 1 {
				return false // ambiguous: several keys
			}
			q, found = v[0], true
		}
	}
	h := r.Header.Values("X-Qlik-Xrfkey")
	if !found || len(h) != 1 || h[0] != q || len(q) != 16 {
		return false
	}
	for i := 0; i < len(q); i++ {
		if !strings.ContainsRune(alnum, rune(q[i])) {
			return false
		}
	}
	return true
}

// qpsHandler serves the QPS API of port 4243. The listener requires a
// client certificate signed by the simulator's root; the handler adds the
// Xrfkey check, the fault modes and the request log.
func (s *Sim) qpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/qps/", s.serveQPS)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	return mux
}

// qpsCall is a parsed QPS API path: /qps/[{prefix}/]{resource}[/{args}].
type qpsCall struct {
	vp       *vproxy
	resource string   // ticket, session or user
	args     []string // path segments after the resource
}

func (s *Sim) parseQPSPath(path string) (qpsCall, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/qps/"), "/")
	if len(segs) > 0 && segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1] // tolerate a trailing slash
	}
	if len(segs) == 0 {
		return qpsCall{}, false
	}
	isResource := func(x string) bool { return x == "ticket" || x == "session" || x == "user" }
	// A virtual proxy prefix may itself be a resource name ("ticket" is a
	// common prefix): /qps/ticket/ticket is the ticket API of VP "ticket".
	prefix := ""
	if _, isVP := s.byPrefix[segs[0]]; segs[0] != "" && (!isResource(segs[0]) || isVP && len(segs) > 1 && isResource(segs[1])) {
		prefix, segs = segs[0], segs[1:]
	}
	if len(segs) == 0 || !isResource(segs[0]) {
		return qpsCall{}, false
	}
	vp, ok := s.vpByAPIPrefix(prefix)
	if !ok {
		return qpsCall{}, false
	}
	return qpsCall{vp: vp, resource: segs[0], args: segs[1:]}, true
}

func (s *Sim) serveQPS(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	call, ok := s.parseQPSPath(r.URL.Path)
	prefix := ""
	if ok {
		prefix = call.vp.Prefix
	}
	var user Identity
	defer func() {
		e := Event{Kind: "qps", Prefix: prefix, Method: r.Method, Path: r.URL.Path, Status: sw.status, Tag: r.Header.Get("X-Sim-Tag")}
		if user != (Identity{}) {
			e.User = user.String()
		}
		s.record(e)
	}()
	f := QPSFault(s.fault.Load())
	if f == FaultHang || f == FaultSlow {
		// Read the (small) body first: net/http notices a client that
		// leaves only once the body is read, and a waiting handler must
		// end then rather than at Shutdown.
		b, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
		if err != nil {
			sw.status = 0
			panic(http.ErrAbortHandler)
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	switch f {
	case Fault5xx:
		http.Error(sw, "Service Unavailable", http.StatusServiceUnavailable)
		return
	case FaultHang:
		<-r.Context().Done() // the client gives up, or Shutdown cancels the base context
		sw.status = 0
		// A hung server never answers: abort rather than let net/http
		// send an empty 200, which a client racing its own deadline
		// could read as success.
		panic(http.ErrAbortHandler)
	case FaultClose, FaultDown, FaultCertRejected:
		// Down and cert: a connection that slipped in as the mode
		// changed; a stopped or refusing QPS does not answer it either.
		sw.status = 0
		panic(http.ErrAbortHandler) // net/http closes the connection without a response
	case FaultSlow:
		d := s.qpsDelay()
		s.log.Debug("qps fault: answering late", zap.String("path", r.URL.Path), zap.Duration("delay", d))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the client gave up, or Shutdown
			t.Stop()
			sw.status = 0
			panic(http.ErrAbortHandler)
		}
	case FaultBadJSON:
		// Cut off inside the object, as a broken node or middlebox would.
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		sw.Header().Set("Content-Type", "application/json; charset=utf-8")
		sw.WriteHeader(status)
		io.WriteString(sw, `{"UserDirectory":"`)
		return
	}
	if !checkXrfkey(r) {
		http.Error(sw, msgXSRF, http.StatusForbidden)
		return
	}
	if !ok {
		// Unknown virtual proxy prefix or resource. QSEoW's answer is not
		// documented; the simulator refuses with 404 and says which.
		http.Error(sw, fmt.Sprintf("Not found: no QPS API at %s (unknown virtual proxy prefix or resource)", r.URL.Path), http.StatusNotFound)
		return
	}
	switch {
	case call.resource == "ticket" && len(call.args) == 0 && r.Method == http.MethodPost:
		user = s.postTicket(sw, r, call)
	case call.resource == "session" && len(call.args) == 0 && r.Method == http.MethodPost:
		user = s.postSession(sw, r, call)
	case call.resource == "session" && len(call.args) == 0 && r.Method == http.MethodGet:
		writeJSON(sw, http.StatusOK, s.qpsSessions(call.vp, nil))
	case call.resource == "session" && len(call.args) == 1 && (r.Method == http.MethodGet || r.Method == http.MethodDelete):
		user = s.sessionByIDAPI(sw, r, call)
	case call.resource == "user" && len(call.args) == 2 && (r.Method == http.MethodGet || r.Method == http.MethodDelete):
		user = s.userAPI(sw, r, call)
	case call.resource == "ticket" && len(call.args) == 0, call.resource == "session" && len(call.args) <= 1, call.resource == "user" && len(call.args) == 2:
		http.Error(sw, fmt.Sprintf("Method %s not allowed on %s", r.Method, r.URL.Path), http.StatusMethodNotAllowed)
	default:
		http.Error(sw, fmt.Sprintf("Not found: no QPS API at %s", r.URL.Path), http.StatusNotFound)
	}
}

// ticketRequest is the body of POST /qps/{prefix}/ticket and, with
// SessionId, of POST /qps/{prefix}/session. Field names match
// case-insensitively, as .NET's deserializer does.
type ticketRequest struct {
	UserDirectory string      `json:"UserDirectory"`
	UserID        string      `json:"UserId"`
	Attributes    []Attribute `json:"Attributes"`
	TargetID      string      `json:"TargetId,omitempty"`
	SessionID     string      `json:"SessionId,omitempty"`
}

// decodeBody reads a JSON API body strictly: JSON content type, one object,
// no unknown members (QSEoW's handling of those is undocumented: the
// simulator refuses them so that typos fail loudly).
func decodeBody(r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errors.New("Content-Type must be application/json")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil {
		return fmt.Errorf("reading body: %v", err)
	}
	if len(b) > maxAPIBody {
		return errors.New("body too large")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: data after the object")
	}
	return nil
}

// validate applies QPS's rules to directory and user id and returns the
// user as QPS echoes it (trimmed, directory upper-cased).
func (t *ticketRequest) validate() (Identity, error) {
	var errs []error
	if err := checkUserPart(t.UserDirectory); err != nil {
		errs = append(errs, fmt.Errorf("UserDirectory %v", err))
	}
	if err := checkUserPart(t.UserID); err != nil {
		errs = append(errs, fmt.Errorf("UserId %v", err))
	}
	if t.Attributes == nil {
		t.Attributes = []Attribute{}
	}
	return Identity{Directory: t.UserDirectory, ID: t.UserID}.normalized(), errors.Join(errs...)
}

// postTicket implements POST /qps/{prefix}/ticket: 201 with the request
// echoed in PascalCase plus Ticket and TargetUri.
func (s *Sim) postTicket(w http.ResponseWriter, r *http.Request, call qpsCall) Identity {
	var req ticketRequest
	if err := decodeBody(r, &req); err != nil {
		http.Error(w, err.Error(), statusFor(err))
		return Identity{}
	}
	if req.SessionID != "" {
		http.Error(w, "invalid JSON body: SessionId is not a ticket request field", http.StatusBadRequest)
		return Identity{}
	}
	u, err := req.validate()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return Identity{}
	}
	var targetURI *string
	if req.TargetID != "" {
		t, ok := s.st.target(req.TargetID)
		if !ok || t.vp != call.vp {
			// Unknown, expired or foreign TargetId: undocumented, refused.
			http.Error(w, "Unknown TargetId "+req.TargetID, http.StatusBadRequest)
			return u
		}
		targetURI = &t.uri
	}
	ticket := s.st.issueTicket(call.vp, u, req.Attributes, req.TargetID)
	s.log.Info("ticket issued", zap.String("user", u.String()), zap.String("prefix", call.vp.Prefix))
	resp := struct {
		UserDirectory string      `json:"UserDirectory"`
		UserID        string      `json:"UserId"`
		Attributes    []Attribute `json:"Attributes"`
		Ticket        string      `json:"Ticket"`
		TargetURI     *string     `json:"TargetUri"`
	}{u.Directory, u.ID, req.Attributes, ticket, targetURI}
	writeJSON(w, http.StatusCreated, resp)
	return u
}

func statusFor(err error) int {
	if strings.HasPrefix(err.Error(), "Content-Type") {
		return http.StatusUnsupportedMediaType
	}
	return http.StatusBadRequest
}

// sessionJSON is a session as the session API writes it (PascalCase).
type sessionJSON struct {
	UserDirectory string      `json:"UserDirectory"`
	UserID        string      `json:"UserId"`
	Attributes    []Attribute `json:"Attributes"`
	SessionID     string      `json:"SessionId"`
}

func toSessionJSON(i SessionInfo) sessionJSON {
	a := i.Attributes
	if a == nil {
		a = []Attribute{}
	}
	return sessionJSON{i.User.Directory, i.User.ID, a, i.ID}
}

// postSession implements POST /qps/{prefix}/session with a caller-chosen
// SessionId; the caller then sets the cookie itself.
func (s *Sim) postSession(w http.ResponseWriter, r *http.Request, call qpsCall) Identity {
	var req ticketRequest
	if err := decodeBody(r, &req); err != nil {
		http.Error(w, err.Error(), statusFor(err))
		return Identity{}
	}
	u, err := req.validate()
	if strings.TrimSpace(req.SessionID) == "" {
		err = errors.Join(err, errors.New("SessionId must not be empty"))
	}
	if req.TargetID != "" {
		err = errors.Join(err, errors.New("TargetId is not a session request field"))
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return Identity{}
	}
	sess, err := s.st.createSession(call.vp, u, req.Attributes, req.SessionID)
	switch {
	case errors.Is(err, errTooManySessions):
		http.Error(w, err.Error(), http.StatusForbidden)
		return u
	case err != nil:
		http.Error(w, err.Error(), http.StatusConflict)
		return u
	}
	s.log.Info("session created", zap.String("user", u.String()), zap.String("prefix", call.vp.Prefix))
	writeJSON(w, http.StatusCreated, sessionJSON{u.Directory, u.ID, req.Attributes, sess.id})
	return u
}

// qpsSessions lists vp's live sessions, optionally only those of u.
func (s *Sim) qpsSessions(vp *vproxy, u *Identity) []sessionJSON {
	infos := s.st.list(func(x *session) bool { return x.vp == vp && (u == nil || s.st.key(x.user) == s.st.key(*u)) })
	out := make([]sessionJSON, 0, len(infos))
	for _, i := range infos {
		out = append(out, toSessionJSON(i))
	}
	return out
}

// sessionByIDAPI implements GET and DELETE /qps/{prefix}/session/{id}.
// Unknown ids answer 404 with "No session with id" (the status is
// undocumented, open question 4; the body text is observed).
func (s *Sim) sessionByIDAPI(w http.ResponseWriter, r *http.Request, call qpsCall) Identity {
	id := call.args[0]
	sess, ok := s.st.sessionByID(id)
	if ok && sess.vp != call.vp {
		ok = false
	}
	if ok {
		if _, st := s.st.lookup(call.vp, id, false); st != sessionLive {
			ok = false
		}
	}
	if !ok {
		http.Error(w, "No session with id "+id, http.StatusNotFound)
		return Identity{}
	}
	if r.Method == http.MethodGet {
		s.st.mu.Lock()
		info := sess.infoLocked()
		s.st.mu.Unlock()
		writeJSON(w, http.StatusOK, toSessionJSON(info))
		return sess.user
	}
	info, ok := s.st.endSession(id, endClosed)
	if !ok {
		http.Error(w, "No session with id "+id, http.StatusNotFound)
		return sess.user
	}
	writeJSON(w, http.StatusOK, map[string]sessionJSON{"Session": toSessionJSON(info)})
	return sess.user
}

// userSessionJSON is an item of the user API (camelCase, as in the OpenAPI).
type userSessionJSON struct {
	UserDirectory string      `json:"userDirectory"`
	UserID        string      `json:"userId"`
	UserName      string      `json:"userName"`
	SessionID     string      `json:"sessionId"`
	Attributes    []Attribute `json:"attributes"`
}

// userAPI implements GET and DELETE /qps/{prefix}/user/{dir}/{id}. DELETE
// ends all the user's sessions on the virtual proxy, closing their
// websockets with OnSessionLoggedOut, and returns them.
func (s *Sim) userAPI(w http.ResponseWriter, r *http.Request, call qpsCall) Identity {
	u := Identity{Directory: call.args[0], ID: call.args[1]}.normalized()
	if checkUserPart(u.Directory) != nil || checkUserPart(u.ID) != nil {
		http.Error(w, "invalid user directory or id", http.StatusBadRequest)
		return Identity{}
	}
	var infos []SessionInfo
	if r.Method == http.MethodGet {
		infos = s.st.list(func(x *session) bool { return x.vp == call.vp && s.st.key(x.user) == s.st.key(u) })
	} else {
		infos = s.st.endUser(call.vp, u, endLogout)
		s.log.Info("user logged out", zap.String("user", u.String()), zap.Int("sessions", len(infos)))
	}
	out := make([]userSessionJSON, 0, len(infos))
	for _, i := range infos {
		a := i.Attributes
		if a == nil {
			a = []Attribute{}
		}
		out = append(out, userSessionJSON{i.User.Directory, i.User.ID, s.userName(i.User), i.ID, a})
	}
	writeJSON(w, http.StatusOK, out)
	return u
}
