package session

import (
	"hash/maphash"
	"sync"
	"time"
)

const localShards = 16

// localCache is the small in-process cache in front of Redis: entries
// live for a short ttl, so that the hot path usually skips Redis while
// what another replica changed shows here within ttl. It holds at most
// about max entries. It is safe for concurrent use.
//
// Writes go to Redis first and then drop the key here (they do not fill
// the cache), and a fill made by a read is refused when any write to the
// shard completed since the read began: so a read racing a write can
// never leave the value the write replaced in the cache.
type localCache struct {
	ttl   time.Duration
	max   int // per shard
	now   func() time.Time
	seed  maphash.Seed
	shard [localShards]localShard
}

type localShard struct {
	mu  sync.Mutex
	gen uint64 // bumped by every drop
	m   map[string]localEntry
}

type localEntry struct {
	e       Entry
	expires time.Time
}

func newLocalCache(ttl time.Duration, size int, now func() time.Time) *localCache {
	c := &localCache{ttl: ttl, max: max(1, size/localShards), now: now, seed: maphash.MakeSeed()}
	for i := range c.shard {
		c.shard[i].m = map[string]localEntry{}
	}
	return c
}

func (c *localCache) shardFor(key string) *localShard {
	return &c.shard[maphash.String(c.seed, key)%localShards]
}

// get returns key's entry if it is cached and fresh, and otherwise the
// generation to pass to fill after reading Redis.
func (c *localCache) get(key string) (e Entry, ok bool, gen uint64) {
	s := c.shardFor(key)
	now := c.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	le, ok := s.m[key]
	if ok && now.Before(le.expires) {
		return le.e, true, 0
	}
	if ok {
		delete(s.m, key)
	}
	return Entry{}, false, s.gen
}

// fill caches e, read from Redis, unless a drop happened in key's shard
// since get returned gen.
func (c *localCache) fill(key string, e Entry, gen uint64) {
	s := c.shardFor(key)
	now := c.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	if len(s.m) >= c.max {
		s.evict(now, c.max)
	}
	s.m[key] = localEntry{e: e, expires: now.Add(c.ttl)}
}

// drop removes key's entry and refuses the fills of reads in flight.
func (c *localCache) drop(key string) {
	s := c.shardFor(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	delete(s.m, key)
}

// evict makes room: it drops the expired entries, then arbitrary ones
// until an eighth of the shard is free, so that a full shard is not
// scanned on every fill.
func (s *localShard) evict(now time.Time, limit int) {
	for k, le := range s.m {
		if !now.Before(le.expires) {
			delete(s.m, k)
		}
	}
	for k := range s.m {
		if len(s.m) <= limit-limit/8-1 {
			break
		}
		delete(s.m, k)
	}
}

// len returns the number of cached entries, stale ones included.
func (c *localCache) len() int {
	n := 0
	for i := range c.shard {
		s := &c.shard[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
