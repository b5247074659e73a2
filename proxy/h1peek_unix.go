//go:build unix

package proxy

import (
	"syscall"
	"time"
)

// quiet reports whether the idle connection c has nothing to read: no
// answer nobody asked for, no close by the server. It looks without
// blocking or reading (MSG_PEEK), in a TLS connection's buffer first.
func (c *h1Conn) quiet() bool {
	if c.tlsState != nil {
		// A read that cannot wait: anything tls.Conn holds, or a record
		// the server sent, shows as data, an alert or EOF; nothing shows
		// as the timeout, which leaves the connection usable.
		c.conn.SetReadDeadline(aLongTimeAgo)
		n, err := c.conn.Read(c.peekBuf[:])
		c.conn.SetReadDeadline(time.Time{})
		if n > 0 || !isTimeout(err) {
			return false
		}
	}
	if c.raw == nil {
		return true
	}
	for {
		if err := c.raw.Read(c.peekFn); err != nil {
			return false
		}
		if c.peekErr != syscall.EINTR {
			break
		}
	}
	// Nothing to read is EAGAIN; a byte is data, and 0 bytes without an
	// error the server's close.
	return c.peekErr == syscall.EAGAIN || c.peekErr == syscall.EWOULDBLOCK
}

// peek is the raw read of quiet: it never blocks and never consumes.
func (c *h1Conn) peek(fd uintptr) bool {
	c.peeked, _, c.peekErr = syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true
}
