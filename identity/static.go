package identity

import "net/http"

// Static identifies every request as one fixed user. It is for development
// and demos only: anyone who reaches sensegate acts as that user.
type Static struct{ user User }

// NewStatic returns a provider that always answers u.
func NewStatic(u User) *Static { return &Static{user: u} }

// Identify implements Provider.
func (s *Static) Identify(*http.Request) (User, error) { return s.user, nil }

var _ Provider = (*Static)(nil)
