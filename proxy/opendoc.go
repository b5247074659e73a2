package proxy

import (
	"bytes"
	"encoding/json"
	"sync"
	"sync/atomic"
)

// The outcome of an OpenDoc, as the app_open audit entry records it.
const (
	openOpened   = "opened"    // the Engine answered with a result
	openRefused  = "refused"   // the Engine answered with an error
	openNoAnswer = "no_answer" // the socket ended before an answer
	openSent     = "sent"      // not matched to its answer (no number id, or too many pending)
	openUnknown  = "unknown"   // answered, but the answer's head named neither result nor error
)

// maxPendingOpens bounds the OpenDoc requests of one socket waiting for
// their answer; a client sends one at a time.
const maxPendingOpens = 8

// pendingOpens are the OpenDoc requests of a socket sent to Qlik and not
// yet answered, by JSON-RPC id. The client pump adds, the Qlik pump
// takes: safe for both at once.
type pendingOpens struct {
	n  atomic.Int32 // len(m), read without the lock on every Qlik message
	mu sync.Mutex
	m  map[string]string // id → app id
}

// add registers an OpenDoc with id; false when maxPendingOpens are
// pending already (or o is nil).
func (o *pendingOpens) add(id, app string) bool {
	if o == nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.m) >= maxPendingOpens {
		return false
	}
	if o.m == nil {
		o.m = map[string]string{}
	}
	o.m[id] = app
	o.n.Store(int32(len(o.m)))
	return true
}

// waiting reports whether any OpenDoc waits for its answer.
func (o *pendingOpens) waiting() bool { return o.n.Load() > 0 }

// take removes and returns the OpenDoc with id.
func (o *pendingOpens) take(id string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	app, ok := o.m[id]
	if ok {
		delete(o.m, id)
		o.n.Store(int32(len(o.m)))
	}
	return app, ok
}

// drain removes and returns every pending OpenDoc's app id.
func (o *pendingOpens) drain() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var apps []string
	for id, app := range o.m {
		apps = append(apps, app)
		delete(o.m, id)
	}
	o.n.Store(0)
	return apps
}

// openAnswered looks at head, the start of a Qlik message, for the answer
// to a pending OpenDoc and writes its audit entry.
func (p *wsPair) openAnswered(head []byte) {
	id, outcome, rpcErr := rpcAnswer(head)
	if id == "" {
		return
	}
	if app, ok := p.opens.take(id); ok {
		p.rl.h.audit.appOpen(p, app, outcome, rpcErr)
	}
}

// rpcError is the error member of an Engine answer, as audited.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// rpcAnswer reads, from head (the start of a message, maybe cut short),
// the number id of a top-level JSON-RPC answer and its outcome: opened
// for a result, refused for an error (with the error when head holds it
// whole), unknown when head ends first. id is "" for anything else
// (notifications, requests, no number id).
func rpcAnswer(head []byte) (id, outcome string, rpcErr *rpcError) {
	dec := json.NewDecoder(bytes.NewReader(head))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", "", nil
	}
	outcome = openUnknown
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			break
		}
		name, _ := t.(string)
		switch {
		case asciiEqualFold([]byte(name), "id"):
			v, err := dec.Token()
			if err != nil {
				return id, outcome, rpcErr
			}
			n, ok := v.(json.Number)
			if !ok || len(n) > maxIDRaw {
				return "", "", nil
			}
			id = string(n)
		case asciiEqualFold([]byte(name), "method"):
			return "", "", nil // a request or notification
		case asciiEqualFold([]byte(name), "result"):
			outcome = openOpened
			if id != "" {
				return id, outcome, nil
			}
			if skipValue(dec) != nil {
				return id, outcome, nil
			}
		case asciiEqualFold([]byte(name), "error"):
			outcome = openRefused
			var e rpcError
			if dec.Decode(&e) == nil {
				e.Message = truncate(e.Message, maxAppID)
				rpcErr = &e
			} else {
				return id, outcome, nil
			}
			if id != "" {
				return id, outcome, rpcErr
			}
		default:
			if skipValue(dec) != nil {
				return id, outcome, rpcErr
			}
		}
	}
	return id, outcome, rpcErr
}

// skipValue reads past the next value of dec.
func skipValue(dec *json.Decoder) error {
	var raw json.RawMessage
	return dec.Decode(&raw)
}
