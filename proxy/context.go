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

func withEntry(ctx context.Context, e session.Entry) context.Context {
	return context.WithValue(ctx, keyEntry, e)
}

// entryFrom returns the Qlik session the request is forwarded with.
func entryFrom(ctx context.Context) (session.Entry, bool) {
	e, ok := ctx.Value(keyEntry).(session.Entry)
	return e, ok
}
