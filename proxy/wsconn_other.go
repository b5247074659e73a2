//go:build !unix

package proxy

import "net"

// newIdleConn returns c: only on Unix can a read wait for data without a
// buffer (see idleConn).
func newIdleConn(c net.Conn) net.Conn { return c }
