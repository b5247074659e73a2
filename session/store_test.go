package session

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sensegate/sensegate/tooling/fakeclock"
)

// storeFactory makes an empty store with the given idle timeout whose clock
// is advanced by the returned func. A store that expires entries by real
// time (Redis) may scale: give it a short real idle timeout and make
// advance wait the real time that stands for d at that scale, since the
// suite relies only on the ratios of its durations.
type storeFactory func(t *testing.T, idle time.Duration) (Store, func(time.Duration))

// runStoreTests is the conformance suite every Store must pass.
func runStoreTests(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	t.Run("get missing", func(t *testing.T) {
		s, _ := newStore(t, time.Minute)
		if _, ok, err := s.Get(ctx, "nobody"); ok || err != nil {
			t.Errorf("Get(missing) = ok %v, err %v; want false, nil", ok, err)
		}
	})
	t.Run("put get", func(t *testing.T) {
		s, _ := newStore(t, time.Minute)
		want := Entry{Cookie: "c1", CSRFToken: "t1", Node: "qlik2:443", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		if err := s.Put(ctx, `ACME\alice`, want); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Get(ctx, `ACME\alice`)
		if !ok || err != nil || got.Cookie != want.Cookie || got.CSRFToken != want.CSRFToken || !got.Created.Equal(want.Created) {
			t.Errorf("Get = %+v, %v, %v; want %+v", got, ok, err, want)
		}
		if _, ok, _ := s.Get(ctx, `ACME\bob`); ok {
			t.Error("Get(other key) found an entry")
		}
	})
	t.Run("delete only the failed cookie", func(t *testing.T) {
		s, _ := newStore(t, time.Minute)
		s.Put(ctx, "k", Entry{Cookie: "new"})
		if err := s.Delete(ctx, "k", "old"); err != nil {
			t.Fatal(err)
		}
		if e, ok, _ := s.Get(ctx, "k"); !ok || e.Cookie != "new" {
			t.Fatalf("Delete(k, old) removed the newer entry: %+v %v", e, ok)
		}
		s.Delete(ctx, "k", "new")
		if _, ok, _ := s.Get(ctx, "k"); ok {
			t.Error("Delete(k, new) left the entry")
		}
		s.Put(ctx, "k", Entry{Cookie: "x"})
		s.Delete(ctx, "k", "")
		if _, ok, _ := s.Get(ctx, "k"); ok {
			t.Error(`Delete(k, "") left the entry`)
		}
		if err := s.Delete(ctx, "missing", ""); err != nil {
			t.Errorf("Delete(missing) = %v, want nil", err)
		}
	})
	t.Run("idle expiry and touch", func(t *testing.T) {
		s, advance := newStore(t, 30*time.Minute)
		s.Put(ctx, "k", Entry{Cookie: "c"})
		advance(20 * time.Minute)
		if _, ok, _ := s.Get(ctx, "k"); !ok {
			t.Fatal("entry gone after 20 of 30 idle minutes")
		}
		advance(20 * time.Minute) // 40 since Put, 20 since the Get
		if _, ok, _ := s.Get(ctx, "k"); !ok {
			t.Fatal("Get did not extend the idle lifetime")
		}
		advance(31 * time.Minute)
		if _, ok, _ := s.Get(ctx, "k"); ok {
			t.Error("entry still there after 31 idle minutes")
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		s, _ := newStore(t, time.Minute)
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 200; j++ {
					k := string(rune('a' + (i+j)%8))
					s.Put(ctx, k, Entry{Cookie: k})
					if e, ok, _ := s.Get(ctx, k); ok && e.Cookie != k {
						t.Errorf("Get(%s) = %q: entries crossed keys", k, e.Cookie)
					}
					s.Delete(ctx, k, k)
				}
			}()
		}
		wg.Wait()
	})
}

func TestMemoryStore(t *testing.T) {
	runStoreTests(t, func(t *testing.T, idle time.Duration) (Store, func(time.Duration)) {
		c := fakeclock.New()
		return NewMemory(idle, c.Now), c.Advance
	})
}

func TestMemorySweepsOnPut(t *testing.T) {
	c := fakeclock.New()
	m := NewMemory(time.Minute, c.Now)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		m.Put(ctx, string(rune(i)), Entry{Cookie: "c"})
	}
	c.Advance(2 * time.Minute)
	for i := 0; i < 1000; i++ { // touches every shard: P(a shard is missed) ≈ 32·(31/32)^1000
		m.Put(ctx, fmt.Sprint("fresh", i), Entry{Cookie: "c"})
	}
	if n := m.Len(); n != 1000 {
		t.Errorf("Len after expiry and puts = %d, want 1000 (expired entries swept)", n)
	}
}
