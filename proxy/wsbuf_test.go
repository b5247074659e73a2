package proxy

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A buffer, as gorilla hands them to its pool (an opaque value).
type testBuf struct{ n int }

// setSweep makes wb sweep every d from now on.
func setSweep(wb *writeBuffers, d time.Duration) {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	wb.every = d
	if wb.timer != nil {
		wb.timer.Reset(d)
	}
}

// holding reports the buffer c holds between messages, nil for none.
func holding(c *connBuf) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf
}

// A connection of a registered pair writes each message with the buffer
// of its last one; before registration, and once its pair has ended, it
// holds none.
func TestConnBufKeepsItsBuffer(t *testing.T) {
	wb := newWriteBuffers(8, time.Hour, func() {})
	c := &connBuf{wb: wb}
	a, b := &testBuf{1}, &testBuf{2}

	c.Put(a) // during the handshake's checks
	if holding(c) != nil || wb.held.Load() != 0 {
		t.Fatalf("before registration the connection holds %v (%d held), want none", holding(c), wb.held.Load())
	}

	c.start()
	c.Put(b)
	for i := range 3 {
		if got := c.Get(); got != b {
			t.Fatalf("message %d was given %v, want the connection's buffer %v", i, got, b)
		}
		if n := wb.held.Load(); n != 0 {
			t.Fatalf("while the buffer is in use %d are counted held, want 0", n)
		}
		c.Put(b)
		if n := wb.held.Load(); n != 1 {
			t.Fatalf("between messages %d held, want 1", n)
		}
	}

	c.end()
	if holding(c) != nil || wb.held.Load() != 0 {
		t.Fatalf("after the pair ended the connection holds %v (%d held), want none", holding(c), wb.held.Load())
	}
	c.Put(a) // a late write (none happens: the pumps have ended)
	if holding(c) != nil || wb.held.Load() != 0 {
		t.Fatalf("after the end a Put was held (%d held), want it shared", wb.held.Load())
	}
}

// The buffers held between messages are bounded across connections:
// past the bound a connection takes and gives back through the shared pool.
func TestConnBufBound(t *testing.T) {
	const max = 2
	wb := newWriteBuffers(max, time.Hour, func() {})
	var cs []*connBuf
	for i := range 4 {
		c := &connBuf{wb: wb}
		c.start()
		c.Put(&testBuf{i})
		cs = append(cs, c)
		if n := wb.held.Load(); n > max {
			t.Fatalf("%d buffers held, want at most %d", n, max)
		}
	}
	n := 0
	for _, c := range cs {
		if holding(c) != nil {
			n++
		}
	}
	if n != max || wb.held.Load() != max {
		t.Fatalf("%d connections hold a buffer (%d counted), want %d", n, wb.held.Load(), max)
	}
	// One gives its buffer back: another may hold one.
	cs[0].end()
	cs[3].Put(&testBuf{9})
	if holding(cs[3]) == nil || wb.held.Load() != max {
		t.Fatalf("after one ended, the next Put was not held (%d held)", wb.held.Load())
	}
}

// A sweep gives back the buffers of connections that wrote nothing since
// the last one, and only theirs; the sweeps stop once nothing is held.
func TestConnBufSweep(t *testing.T) {
	busy, idle := &connBuf{}, &connBuf{}
	wb := newWriteBuffers(8, time.Hour, func() { busy.sweep(); idle.sweep() })
	busy.wb, idle.wb = wb, wb
	busy.start()
	idle.start()
	bb, ib := &testBuf{1}, &testBuf{2}
	busy.Put(bb)
	idle.Put(ib)

	wb.run() // the first sweep: both were used since the start
	if holding(busy) != bb || holding(idle) != ib {
		t.Fatalf("the first sweep took buffers of connections that had just written")
	}
	busy.Put(busy.Get()) // busy writes a message, idle does not
	wb.run()
	if holding(busy) != bb {
		t.Errorf("the sweep took the buffer of a connection that wrote since the last one")
	}
	if holding(idle) != nil {
		t.Errorf("the sweep left the buffer of a connection idle since the last one")
	}
	if n := wb.held.Load(); n != 1 {
		t.Errorf("%d held, want 1", n)
	}

	// On the timer: with nothing written any more, everything goes back
	// and the sweeps stop.
	setSweep(wb, 5*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for wb.held.Load() != 0 || wb.armed.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s idle: %d held, sweeps armed %v; want none held and no sweep", wb.held.Load(), wb.armed.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if holding(busy) != nil {
		t.Errorf("the idle connection still holds its buffer")
	}
	wb.close()
}

// Through the relay: the Qlik side of every relayed socket that sent a
// message keeps its buffer between messages, gives it back once idle, and
// holds none after its socket closed.
func TestRelayWriteBuffers(t *testing.T) {
	e := newEnv(t)
	wb := e.h.ws.bufs
	setSweep(wb, time.Hour)
	users := []string{"alice", "bob", "carol"}
	var conns []*websocket.Conn
	for i, u := range users {
		c, _, err := e.dialEngine(t, "/app/engineData", u, nil)
		if err != nil {
			t.Fatalf("%s: dial: %v", u, err)
		}
		for j := range 3 {
			if ans, _ := call(t, c, 10*i+j+1, "EngineVersion", -1, ""); ans.Error != nil {
				t.Fatalf("%s: %+v", u, ans.Error)
			}
		}
		conns = append(conns, c)
	}
	// Each pump gives its buffer back after the message's last frame,
	// which may be after the client read it.
	want := int64(len(users))
	waitFor(t, func() bool { return wb.held.Load() == want }, func() string {
		return "buffers held between messages: " + itoa(int(wb.held.Load())) + ", want one per socket (" + itoa(int(want)) + ")"
	})

	// Idle: the sweeps give everything back, and the sockets still relay.
	setSweep(wb, 5*time.Millisecond)
	waitFor(t, func() bool { return wb.held.Load() == 0 }, func() string {
		return itoa(int(wb.held.Load())) + " buffers still held by idle sockets"
	})
	if ans, _ := call(t, conns[0], 99, "EngineVersion", -1, ""); ans.Error != nil {
		t.Fatalf("after the sweep: %+v", ans.Error)
	}

	// Closed: nothing held, sweeps or not.
	setSweep(wb, time.Hour)
	for i, c := range conns {
		call(t, c, 100+i, "EngineVersion", -1, "")
	}
	waitFor(t, func() bool { return wb.held.Load() == want }, func() string {
		return "buffers held before the close: " + itoa(int(wb.held.Load()))
	})
	for _, c := range conns {
		c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.Close()
	}
	waitFor(t, func() bool { return e.h.ws.count() == 0 }, func() string { return "sockets still relayed after the close" })
	if n := wb.held.Load(); n != 0 {
		t.Errorf("%d buffers held after every socket closed, want 0", n)
	}
}

// waitFor polls cond for up to 10 seconds; the test fails with what
// describes the state when it never held.
func waitFor(t *testing.T, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(2 * time.Millisecond)
	}
}
