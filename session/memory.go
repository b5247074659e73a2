package session

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

const memoryShards = 32

// Memory is a Store in process memory: the default for a single replica.
// The zero value is not usable; call NewMemory.
type Memory struct {
	idle  time.Duration
	now   func() time.Time
	seed  maphash.Seed
	shard [memoryShards]memShard
}

type memShard struct {
	mu        sync.Mutex
	m         map[string]*memEntry
	lastSweep time.Time
}

type memEntry struct {
	e        Entry
	lastUsed time.Time
}

// NewMemory returns an empty jar whose entries expire after idle without
// use (no expiry when idle is 0). now is the clock (time.Now when nil).
func NewMemory(idle time.Duration, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	m := &Memory{idle: idle, now: now, seed: maphash.MakeSeed()}
	for i := range m.shard {
		m.shard[i].m = map[string]*memEntry{}
	}
	return m
}

func (m *Memory) shardFor(key string) *memShard {
	return &m.shard[maphash.String(m.seed, key)%memoryShards]
}

func (m *Memory) expired(me *memEntry, now time.Time) bool {
	return m.idle > 0 && now.Sub(me.lastUsed) > m.idle
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) (Entry, bool, error) {
	s := m.shardFor(key)
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	me, ok := s.m[key]
	if !ok {
		return Entry{}, false, nil
	}
	if m.expired(me, now) {
		delete(s.m, key)
		return Entry{}, false, nil
	}
	me.lastUsed = now
	return me.e, true, nil
}

// Put implements Store. It also drops the shard's expired entries, at
// most once per idle period, so an idle jar does not keep memory forever.
func (m *Memory) Put(_ context.Context, key string, e Entry) error {
	s := m.shardFor(key)
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = &memEntry{e: e, lastUsed: now}
	if m.idle > 0 && now.Sub(s.lastSweep) > m.idle {
		s.lastSweep = now
		for k, me := range s.m {
			if m.expired(me, now) {
				delete(s.m, k)
			}
		}
	}
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, key, cookie string) error {
	s := m.shardFor(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if me, ok := s.m[key]; ok && (cookie == "" || me.e.Cookie == cookie) {
		delete(s.m, key)
	}
	return nil
}

// Len returns the number of entries, expired ones included until swept.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shard {
		s := &m.shard[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

var _ Store = (*Memory)(nil)
