package proxy

import (
	"context"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyUser
	keyEntry
)

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, keyRequestID, id)
}

// requestID returns the request's id, "" when none was assigned.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(keyRequestID).(string)
	return id
}

func withUser(ctx context.Context, u identity.User) context.Context {
	return context.WithValue(ctx, keyUser, u)
}

// userFrom returns the identified user of the request, if any.
func userFrom(ctx context.Context) (identity.User, bool) {
	u, ok := ctx.Value(keyUser).(identity.User)
	return u, ok
}

// attempt is one try of forwarding a request to Qlik with a session.
type attempt struct {
	entry session.Entry
	// n counts tries: 1, then 2 for the one replay after Qlik refused the
	// session.
	n int
	// body is the buffered request body (nil when the request has none or
	// it was streamed); replayable says whether the request can be sent
	// again.
	body       []byte
	replayable bool
}

func withAttempt(ctx context.Context, a *attempt) context.Context {
	return context.WithValue(ctx, keyEntry, a)
}

// attemptFrom returns the try the request is forwarded as.
func attemptFrom(ctx context.Context) (*attempt, bool) {
	a, ok := ctx.Value(keyEntry).(*attempt)
	return a, ok
}
