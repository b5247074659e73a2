// Package session holds each user's Qlik session cookie on the server side
// (the jar) and makes sure a user gets exactly one Qlik login however many
// of their requests arrive at once.
package session

import (
	"context"
	"errors"
	"time"
)

// Entry is a user's Qlik session as sensegate holds it. Cookie and
// CSRFToken are secrets: never log them.
type Entry struct {
	// Cookie is the value of the Qlik session cookie.
	Cookie string
	// CSRFToken is the websocket CSRF token fetched with the session, ""
	// until fetched.
	CSRFToken string
	// Created is when sensegate logged the user in to Qlik.
	Created time.Time
	// Node names the Qlik proxy node that holds the session (see
	// NodeLoginer); "" when there is one node only.
	Node string
}

// Store is the jar: entries by user key. Entries expire when unused for
// longer than the store's idle timeout, which follows Qlik's session
// inactivity timeout, so an entry Qlik has surely forgotten is not tried.
// Implementations are safe for concurrent use.
type Store interface {
	// Get returns the entry for key and marks it used (extending its idle
	// lifetime). ok is false when there is none or it expired.
	Get(ctx context.Context, key string) (e Entry, ok bool, err error)
	// Put stores e for key, replacing any entry.
	Put(ctx context.Context, key string, e Entry) error
	// Delete removes key's entry if its Cookie is cookie (or whatever it
	// holds when cookie is ""). Deleting only the cookie that failed keeps
	// concurrent requests that saw the same failure from dropping the new
	// session another request just made.
	Delete(ctx context.Context, key, cookie string) error
}

// ErrLoginTimeout is returned by Broker.Ensure when the Qlik login did not
// finish within the broker's login timeout.
var ErrLoginTimeout = errors.New("session: qlik login timed out")
