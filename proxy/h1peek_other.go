//go:build !unix

package proxy

// quiet reports whether the idle connection c has nothing to read. Here
// it cannot look without blocking: a connection the server closed is
// found by the request, which is then sent again on another.
func (c *h1Conn) quiet() bool { return true }

func (c *h1Conn) peek(fd uintptr) bool { return true }
