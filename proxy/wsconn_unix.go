//go:build unix

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// idleConn is a TCP connection of a relayed websocket that holds a read
// buffer only while there is something to read. A relay's reader waits
// for the next message most of its life, and a bufio.Reader under it
// would hold its buffer all that time; here the wait is for readability
// (through the connection's syscall.RawConn, so deadlines and Close work
// as on the connection itself), and a chunk is taken from a pool only
// once data is there, and given back once it was read. gorilla's own
// reader over it is made as small as gorilla allows (wsReadBufferSize).
// Reads of a chunk or more go to the connection directly.
//
// It does what net.TCPConn's Read does, in the same system calls: a read,
// and when nothing is there, a wait for the poller and another read.
//
// Write deadlines are moved lazily: gorilla sets one before every frame
// it writes (the relay asks for DefaultWriteWait from each message), and
// moving a connection's deadline costs a timer update in the runtime. A
// deadline later than the one set by at most a sixteenth of what is left
// of it keeps the one set, so a write is given 15/16 of its time at least.
// An earlier deadline, or none, is set at once.
type idleConn struct {
	net.Conn // a TCP connection, or a wrapper of one that is a syscall.Conn
	rc       syscall.RawConn
	buf      *[wsChunkSize]byte // what was read and not yet returned: buf[r:w]; nil when nothing is held
	r, w     int
	// fillFn is fill, bound once; fill leaves its outcome in n and err.
	fillFn func(fd uintptr) bool
	n      int
	err    error

	wmu sync.Mutex
	wd  time.Time // the write deadline set on the connection
}

// wsChunkSize is the size of an idleConn's read chunk: a small Engine
// message and its frame in one read.
const wsChunkSize = 4 << 10

var wsChunks = sync.Pool{New: func() any { return new([wsChunkSize]byte) }}

// newIdleConn returns c as an idleConn when it reaches its socket as a
// syscall.Conn (a TCP connection, or a wrapper that passes SyscallConn
// on, as the reloading server's connection of a gateway does), c itself
// otherwise (TLS connections keep buffers of their own anyway). Reads then
// go to the socket, past the wrapper; everything else (Write, Close,
// deadlines) goes through it.
func newIdleConn(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	ic := &idleConn{Conn: c, rc: rc}
	ic.fillFn = ic.fill
	return ic
}

func (c *idleConn) Read(p []byte) (int, error) {
	switch {
	case len(p) == 0:
		return 0, nil
	case c.buf != nil:
		return c.drain(p), nil
	case len(p) >= wsChunkSize:
		return c.Conn.Read(p)
	}
	c.n, c.err = 0, nil
	if err := c.rc.Read(c.fillFn); err != nil {
		// Closed, or past the read deadline.
		return 0, c.opError(err)
	}
	switch {
	case c.err != nil:
		return 0, c.opError(os.NewSyscallError("read", c.err))
	case c.n == 0:
		return 0, io.EOF
	}
	c.r, c.w = 0, c.n
	return c.drain(p), nil
}

func (c *idleConn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !t.IsZero() && t.Equal(c.wd) {
		// The deadline set, again (a pump keeps its deadline for a while,
		// and gorilla passes it on at every frame): nothing to do, and no
		// clock to read.
		return nil
	}
	if !t.IsZero() && !c.wd.IsZero() && !t.Before(c.wd) && keepDeadline(t.Sub(c.wd), time.Until(t)) {
		return nil
	}
	c.wd = t
	return c.Conn.SetWriteDeadline(t)
}

func (c *idleConn) SetDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wd = t
	return c.Conn.SetDeadline(t)
}

// drain returns what is held, into p, and lets go of the chunk once it
// is empty.
func (c *idleConn) drain(p []byte) int {
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	if c.r == c.w {
		wsChunks.Put(c.buf)
		c.buf = nil
	}
	return n
}

// fill reads what the socket has into a chunk from the pool. Nothing
// there (EAGAIN): the chunk goes back and fill asks to wait (false).
func (c *idleConn) fill(fd uintptr) bool {
	b := wsChunks.Get().(*[wsChunkSize]byte)
	for {
		n, err := syscall.Read(int(fd), b[:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			wsChunks.Put(b)
			return false
		case err != nil || n <= 0:
			wsChunks.Put(b)
			c.err = err
			return true
		}
		c.buf, c.n = b, n
		return true
	}
}

func (c *idleConn) opError(err error) error {
	return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

var _ net.Conn = (*idleConn)(nil)
