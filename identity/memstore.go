package identity

import (
	"context"
	"sync"
	"time"
)

// memorySweepInterval is how often, at most, a Put also drops every
// expired entry of a MemorySessions (entries are dropped on access too).
const memorySweepInterval = time.Minute

// MemorySessions is a SessionStore in process memory: for a single
// replica, since a restart signs everyone out and replicas do not share
// it. It starts no goroutine: expired entries are dropped when accessed,
// and all of them at most once per minute during a Put. Safe for
// concurrent use.
type MemorySessions struct {
	now func() time.Time

	mu        sync.Mutex
	entries   map[string]memoryEntry
	lastSweep time.Time
}

type memoryEntry struct {
	data    []byte
	expires time.Time
}

// NewMemorySessions returns an empty MemorySessions reading the time from
// now (time.Now if nil).
func NewMemorySessions(now func() time.Time) *MemorySessions {
	if now == nil {
		now = time.Now
	}
	return &MemorySessions{now: now, entries: make(map[string]memoryEntry), lastSweep: now()}
}

// Get implements SessionStore. The returned data is a copy.
func (m *MemorySessions) Get(_ context.Context, id string) ([]byte, bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	if !ok {
		return nil, false, nil
	}
	if !now.Before(e.expires) {
		delete(m.entries, id)
		return nil, false, nil
	}
	return append([]byte(nil), e.data...), true, nil
}

// Put implements SessionStore. A ttl that is not positive deletes id.
func (m *MemorySessions) Put(_ context.Context, id string, data []byte, ttl time.Duration) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if ttl <= 0 {
		delete(m.entries, id)
		return nil
	}
	m.entries[id] = memoryEntry{data: append([]byte(nil), data...), expires: now.Add(ttl)}
	if now.Sub(m.lastSweep) >= memorySweepInterval {
		m.lastSweep = now
		for k, e := range m.entries {
			if !now.Before(e.expires) {
				delete(m.entries, k)
			}
		}
	}
	return nil
}

// Delete implements SessionStore.
func (m *MemorySessions) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, id)
	return nil
}

// len returns the number of entries held, expired or not (for tests).
func (m *MemorySessions) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

var _ SessionStore = (*MemorySessions)(nil)
