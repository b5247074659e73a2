package qliksim

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// switchListener is a TCP listener that can be taken down and brought
// back on the same address while its http.Server keeps serving, for the
// "QPS down" fault: while down the port is closed, so clients get
// "connection refused", and the connections it had accepted are dropped,
// as when the service stops. It is safe for concurrent use.
type switchListener struct {
	addr net.Addr // the bound address, rebound by up

	mu      sync.Mutex
	ln      net.Listener  // nil while down
	changed chan struct{} // closed and replaced on every change of ln or closed
	conns   map[*trackedConn]struct{}
	closed  bool
}

func newSwitchListener(ln net.Listener) *switchListener {
	return &switchListener{addr: ln.Addr(), ln: ln, changed: make(chan struct{}), conns: map[*trackedConn]struct{}{}}
}

// notifyLocked wakes Accept calls waiting for a change; l.mu is held.
func (l *switchListener) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Accept waits for a connection; while the listener is down it waits for
// it to come back up (or be closed).
func (l *switchListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		ln, changed := l.ln, l.changed
		l.mu.Unlock()
		if ln == nil {
			<-changed
			continue
		}
		c, err := ln.Accept()
		l.mu.Lock()
		if err != nil {
			current := l.ln == ln && !l.closed
			l.mu.Unlock()
			if current {
				return nil, err
			}
			continue // taken down (or closed) under us: look again
		}
		if l.ln != ln || l.closed {
			// Accepted just as the listener went down: a stopped
			// service does not answer it.
			l.mu.Unlock()
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, l: l}
		l.conns[tc] = struct{}{}
		l.mu.Unlock()
		return tc, nil
	}
}

// Close closes the listener for good (http.Server.Shutdown calls it).
func (l *switchListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var err error
	if l.ln != nil {
		err = l.ln.Close()
		l.ln = nil
	}
	l.notifyLocked()
	return err
}

// Addr returns the bound address, also while down.
func (l *switchListener) Addr() net.Addr { return l.addr }

// down closes the port and drops every accepted connection. It does
// nothing when the listener is down or closed already.
func (l *switchListener) down() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln == nil {
		return
	}
	l.ln.Close()
	l.ln = nil
	l.dropLocked()
	l.notifyLocked()
}

// drop closes every accepted connection, leaving the port open.
func (l *switchListener) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropLocked()
}

func (l *switchListener) dropLocked() {
	for c := range l.conns {
		c.Conn.Close()
		delete(l.conns, c)
	}
}

// up listens on the address again. It does nothing when the listener is
// up; it fails when the listener is closed or the port was taken while
// it was down.
func (l *switchListener) up() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return net.ErrClosed
	case l.ln != nil:
		return nil
	}
	ln, err := net.Listen(l.addr.Network(), l.addr.String())
	if err != nil {
		return fmt.Errorf("qliksim: listening on %s again: %w", l.addr, err)
	}
	l.ln = ln
	l.notifyLocked()
	return nil
}

// trackedConn removes itself from its listener's set when closed.
type trackedConn struct {
	net.Conn
	l    *switchListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	err := c.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil // dropped by down or drop already
	}
	return err
}
