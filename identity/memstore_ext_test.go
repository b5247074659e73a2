package identity_test

import (
	"testing"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"github.com/sensegate/sensegate/tooling/storetest"
)

func TestMemorySessions(t *testing.T) {
	clock := fakeclock.New()
	storetest.SessionStore(t, clock, func(*testing.T) identity.SessionStore { return identity.NewMemorySessions(clock.Now) })
}
