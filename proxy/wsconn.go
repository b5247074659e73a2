package proxy

import (
	"bufio"
	"net"
	"net/http"
)

// idleHijacker is a ResponseWriter whose Hijack hands over an idleConn,
// for gorilla's Upgrader.
type idleHijacker struct{ http.ResponseWriter }

func (w idleHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return newIdleConn(c), brw, nil
}

func (w idleHijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var _ http.Hijacker = idleHijacker{}
