package proxy

import (
	"context"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
)

type ctxKey int

const (
	keyState ctxKey = iota
	keyAttempt
)

// reqState is what sensegate knows of a request, filled in as the request
// goes: the id, then the user, then the first attempt. It is the
// request's context too (the parent's, plus itself under keyState), so
// attaching it costs no allocation beyond its own and one request copy.
// It is allocated for every request: the bools share one word at the end
// (320 bytes, not 352 with each padded to a word of its own).
type reqState struct {
	context.Context
	id    string
	idHdr [1]string // X-Request-Id value, set without allocating a slice
	user  identity.User
	first attempt
	// rec records the answer's status for the metrics, route says which
	// route's metrics count it, and clientGone (below) marks a client
	// that went away before the answer (499); all three only with
	// Options.Metrics.
	rec   statusRecorder
	route *routeMetrics
	// refused is the reason sensegate refused the request (a refuse*
	// constant), "" when it did not.
	refused string
	// start is when the request came, kept only with the access log;
	// handedOver (below) marks a websocket whose pair writes the access
	// line when it ends.
	start time.Time
	// hasUser is set once the user is identified.
	hasUser    bool
	clientGone bool
	handedOver bool
}

// withState makes st the context of a request whose context was ctx.
func withState(ctx context.Context, st *reqState) context.Context {
	st.Context = ctx
	return st
}

// Value implements context.Context: st under keyState, the parent's
// values otherwise.
func (st *reqState) Value(key any) any {
	if key == keyState {
		return st
	}
	return st.Context.Value(key)
}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(keyState).(*reqState)
	return st
}

// requestID returns the request's id, "" when none was assigned.
func requestID(ctx context.Context) string {
	if st := stateFrom(ctx); st != nil {
		return st.id
	}
	return ""
}

// userFrom returns the identified user of the request, if any.
func userFrom(ctx context.Context) (identity.User, bool) {
	if st := stateFrom(ctx); st != nil && st.hasUser {
		return st.user, true
	}
	return identity.User{}, false
}

// attempt is one try of forwarding a request to Qlik with a session.
type attempt struct {
	entry session.Entry
	// n counts tries: 1, then 2 for the one replay after Qlik refused the
	// session; 0 means no try was made.
	n int
	// body is the buffered request body (nil when the request has none or
	// it was streamed); replayable says whether the request can be sent
	// again.
	body       []byte
	replayable bool
	// cookieHdr is the Cookie header sent to Qlik.
	cookieHdr [1]string
}

// withAttempt attaches a replay's attempt, which overrides the first.
func withAttempt(ctx context.Context, a *attempt) context.Context {
	return context.WithValue(ctx, keyAttempt, a)
}

// attemptFrom returns the try the request is forwarded as.
func attemptFrom(ctx context.Context) (*attempt, bool) {
	if a, ok := ctx.Value(keyAttempt).(*attempt); ok {
		return a, true
	}
	if st := stateFrom(ctx); st != nil && st.first.n > 0 {
		return &st.first, true
	}
	return nil, false
}
