package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// Write buffers of relayed websockets. gorilla takes a write buffer from
// its connection's BufferPool for each message and gives it back once the
// message is sent. With one pool for every connection, each 1 KiB Engine
// round trip cost ~1.5 µs more CPU than with a buffer per connection
// (BenchmarkWebsocket, sensegate ÷ bare CPU 1.10× against 1.06×). The
// pool's kind made no difference (sync.Pool, a free list that the
// collector never empties, 4 KiB buffers, a pool per direction), and
// keeping the buffers of either side of the pairs, client or Qlik, won
// nearly all of it. A buffer per connection for its whole life would cost
// every idle socket wsWriteBufferSize.
//
// So the Qlik side of each relayed pair has a connBuf: it keeps the
// buffer of its last message while the socket is busy, and gives it back
// to the shared pool once the socket has sent Qlik nothing for a sweep
// interval. The buffers so held are bounded (wsHeldBufferBytes across the
// relay); past the bound, connections take and give back through the
// shared pool, as the client sides always do.
const (
	// wsHeldBufferBytes bounds the write buffers held between messages by
	// busy sockets, all of them together: 64 sockets.
	wsHeldBufferBytes = 4 << 20
	// wsBufferSweep is how often held buffers of sockets that wrote no
	// message since the last sweep go back: a buffer outlives its
	// socket's last message by one to two of these.
	wsBufferSweep = time.Second
)

// writeBuffers is the relay's side of the connections' write buffers: the
// shared pool, the count of buffers held, and the sweep that gives back
// the idle ones.
type writeBuffers struct {
	shared sync.Pool
	held   atomic.Int64 // buffers held by connBufs
	max    int64
	// sweep, when it runs, gives back the buffers of idle connections
	// (the relay's pairs); it is armed while buffers are held.
	sweep func()
	armed atomic.Bool

	mu    sync.Mutex    // guards the fields below
	every time.Duration // between sweeps
	timer *time.Timer
	stop  bool
}

func newWriteBuffers(max int64, every time.Duration, sweep func()) *writeBuffers {
	return &writeBuffers{max: max, every: every, sweep: sweep}
}

// arm schedules a sweep, unless one is scheduled.
func (wb *writeBuffers) arm() {
	if !wb.armed.CompareAndSwap(false, true) {
		return
	}
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if wb.stop {
		return
	}
	if wb.timer == nil {
		wb.timer = time.AfterFunc(wb.every, wb.run)
		return
	}
	wb.timer.Reset(wb.every)
}

func (wb *writeBuffers) run() {
	wb.sweep()
	wb.armed.Store(false)
	// A buffer held after the sweep looked, or one still in use by a
	// busy socket: sweep again later.
	if wb.held.Load() > 0 {
		wb.arm()
	}
}

// close stops the sweeps (the relay is shutting down).
func (wb *writeBuffers) close() {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	wb.stop = true
	if wb.timer != nil {
		wb.timer.Stop()
	}
}

// connBuf is the write buffer pool (gorilla's BufferPool) of the Qlik
// side of one relayed socket. Its pumps (one writer per connection) take and give back a
// buffer per message; the sweep and the pair's end may run beside them.
type connBuf struct {
	wb *writeBuffers

	mu sync.Mutex
	// live is whether the connection belongs to a registered pair: only
	// then may it hold a buffer, which the sweep and the pair's end give
	// back. Before (the handshake's checks) it uses the shared pool.
	live bool
	buf  any  // the buffer held between messages, as gorilla pools it
	used bool // a message was written since the last sweep
}

func (c *connBuf) Get() any {
	c.mu.Lock()
	v := c.buf
	c.buf, c.used = nil, true
	c.mu.Unlock()
	if v != nil {
		c.wb.held.Add(-1)
		return v
	}
	return c.wb.shared.Get()
}

func (c *connBuf) Put(v any) {
	c.mu.Lock()
	if c.live && c.buf == nil {
		if c.wb.held.Add(1) <= c.wb.max {
			c.buf, c.used = v, true
			c.mu.Unlock()
			c.wb.arm()
			return
		}
		c.wb.held.Add(-1)
	}
	c.mu.Unlock()
	c.wb.shared.Put(v)
}

// start lets the connection hold a buffer between messages.
func (c *connBuf) start() {
	c.mu.Lock()
	c.live = true
	c.mu.Unlock()
}

// sweep gives back the held buffer if no message was written since the
// last sweep.
func (c *connBuf) sweep() {
	c.mu.Lock()
	var v any
	if !c.used {
		v, c.buf = c.buf, nil
	}
	c.used = false
	c.mu.Unlock()
	c.giveBack(v)
}

// end gives back the held buffer: the pair has ended, and the connection
// holds none from then on.
func (c *connBuf) end() {
	c.mu.Lock()
	v := c.buf
	c.buf, c.live = nil, false
	c.mu.Unlock()
	c.giveBack(v)
}

func (c *connBuf) giveBack(v any) {
	if v != nil {
		c.wb.held.Add(-1)
		c.wb.shared.Put(v)
	}
}
