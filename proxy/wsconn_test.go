//go:build unix

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection, the first as
// an idleConn.
func tcpPair(t *testing.T) (*idleConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	ic, ok := newIdleConn(c).(*idleConn)
	if !ok {
		t.Fatal("newIdleConn of a TCP connection is not an idleConn")
	}
	t.Cleanup(func() { ic.Close(); peer.Close() })
	return ic, peer
}

// An idleConn reads what a TCP connection reads, and holds a chunk only
// while part of what it read is left.
func TestIdleConnReads(t *testing.T) {
	ic, peer := tcpPair(t)
	msg := []byte("0123456789abcdef")
	if _, err := peer.Write(msg); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 5)
	for len(got) < len(msg) {
		n, err := ic.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
		if len(got) < len(msg) && ic.buf == nil {
			t.Fatalf("after %d of %d bytes the chunk is gone", len(got), len(msg))
		}
	}
	if string(got) != string(msg) {
		t.Errorf("read %q, want %q", got, msg)
	}
	if ic.buf != nil {
		t.Error("all read, and the chunk is still held")
	}
	// A large read goes straight to the connection.
	big := make([]byte, 3*wsChunkSize)
	go peer.Write(big)
	if _, err := io.ReadFull(ic, make([]byte, len(big))); err != nil {
		t.Fatal(err)
	}
	if ic.buf != nil {
		t.Error("after a large read a chunk is held")
	}
	peer.Close()
	if n, err := ic.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("after the peer closed: %d, %v; want 0, EOF", n, err)
	}
}

// Deadlines and Close end a waiting read, as on the TCP connection.
func TestIdleConnDeadlineAndClose(t *testing.T) {
	ic, _ := tcpPair(t)
	ic.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := ic.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("past the deadline: err = %v, want a timeout", err)
	}
	ic.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := ic.Read(make([]byte, 10))
		done <- err
	}()
	ic.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("after Close: err = %v, want net.ErrClosed", err)
	}
}

// A write deadline moved by little keeps the one set; an earlier one, or
// none, is set at once.
func TestIdleConnWriteDeadline(t *testing.T) {
	ic, _ := tcpPair(t)
	now := time.Now()
	steps := []struct {
		set, want time.Time
	}{
		{now.Add(30 * time.Second), now.Add(30 * time.Second)},
		{now.Add(31 * time.Second), now.Add(30 * time.Second)}, // 1 s later: within 1/16 of 31 s
		{now.Add(30 * time.Second), now.Add(30 * time.Second)}, // the one set
		{now.Add(40 * time.Second), now.Add(40 * time.Second)},
		{now.Add(time.Second), now.Add(time.Second)}, // earlier: at once
		{time.Time{}, time.Time{}},
		{now.Add(time.Minute), now.Add(time.Minute)},
	}
	for i, s := range steps {
		if err := ic.SetWriteDeadline(s.set); err != nil {
			t.Fatal(err)
		}
		if !ic.wd.Equal(s.want) {
			t.Errorf("step %d: deadline %v, want %v", i, ic.wd.Sub(now), s.want.Sub(now))
		}
	}
	// The deadline really is the connection's: past it, a write fails,
	// also when that deadline is given again.
	past := time.Now().Add(-time.Second)
	for range 2 {
		ic.SetWriteDeadline(past)
		if _, err := ic.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("write past the deadline: err = %v, want os.ErrDeadlineExceeded", err)
		}
	}
}

// closeCounter is a connection wrapper, as the reloading server's
// hijacked connection is: it passes SyscallConn on and counts closes.
type closeCounter struct {
	net.Conn
	closes int
}

func (c *closeCounter) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (c *closeCounter) Close() error { c.closes++; return c.Conn.Close() }

// A wrapper that passes SyscallConn on is read on its socket, without a
// held buffer, and still closed through the wrapper (which releases what
// it holds); one that does not (TLS, a pipe) is used as it is.
func TestIdleConnOverAWrapper(t *testing.T) {
	ic, peer := tcpPair(t)
	w := &closeCounter{Conn: ic.Conn}
	wrapped, ok := newIdleConn(w).(*idleConn)
	if !ok {
		t.Fatal("newIdleConn of a wrapper with SyscallConn is not an idleConn")
	}
	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := wrapped.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v; want hello", buf[:n], err)
	}
	if wrapped.buf != nil {
		t.Error("the chunk is held after everything was read")
	}
	wrapped.Close()
	if w.closes != 1 {
		t.Errorf("Close reached the wrapper %d times, want 1", w.closes)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if c := newIdleConn(a); c != a {
		t.Errorf("newIdleConn of a pipe = %T, want the pipe itself", c)
	}
}
