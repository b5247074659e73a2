package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/bench"
)

// callTimeout bounds one Engine call.
const callTimeout = 30 * time.Second

// engineConn is a minimal Engine JSON-RPC client over one websocket: one
// call at a time, answers read into a reused buffer, notifications skipped.
type engineConn struct {
	ws  *websocket.Conn
	id  int64
	req []byte
	buf bytes.Buffer
}

func dialEngine(ctx context.Context, d *websocket.Dialer, rawURL string, o options, user string) (*engineConn, error) {
	ws, resp, err := d.DialContext(ctx, rawURL, o.header(user))
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (status %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(64 << 20)
	return &engineConn{ws: ws}, nil
}

// call sends method with raw JSON params on handle and returns the answer,
// valid until the next call.
func (c *engineConn) call(method string, handle int, params string) ([]byte, error) {
	c.id++
	c.req = append(c.req[:0], `{"jsonrpc":"2.0","id":`...)
	c.req = strconv.AppendInt(c.req, c.id, 10)
	c.req = append(c.req, `,"method":"`...)
	c.req = append(c.req, method...)
	c.req = append(c.req, `","handle":`...)
	c.req = strconv.AppendInt(c.req, int64(handle), 10)
	c.req = append(c.req, `,"params":`...)
	c.req = append(c.req, params...)
	c.req = append(c.req, '}')
	deadline := time.Now().Add(callTimeout)
	c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(websocket.TextMessage, c.req); err != nil {
		return nil, fmt.Errorf("%s: write: %w", method, err)
	}
	c.ws.SetReadDeadline(deadline)
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return nil, fmt.Errorf("%s: read: %w", method, err)
		}
		c.buf.Reset()
		if _, err := c.buf.ReadFrom(r); err != nil {
			return nil, fmt.Errorf("%s: read: %w", method, err)
		}
		msg := c.buf.Bytes()
		id, rest, ok := answerID(msg)
		if !ok || id != c.id {
			continue // a notification (OnConnected…) or a late answer
		}
		if bytes.HasPrefix(rest, []byte(`,"error"`)) {
			return nil, fmt.Errorf("%s: %.300s", method, msg)
		}
		return msg, nil
	}
}

// answerID finds the id of a JSON-RPC answer in its first bytes (the
// Engine writes "jsonrpc" and "id" first) and returns what follows it.
func answerID(msg []byte) (id int64, rest []byte, ok bool) {
	head := msg[:min(len(msg), 64)]
	i := bytes.Index(head, []byte(`"id":`))
	if i < 0 {
		return 0, nil, false
	}
	j := i + len(`"id":`)
	k := j
	for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
		k++
	}
	n, err := strconv.ParseInt(string(msg[j:k]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	return n, msg[k:], true
}

func (c *engineConn) close() {
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.ws.Close()
}

// appOf returns the app id of an Engine socket URL /app/<id>.
func appOf(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	_, app, ok := strings.Cut(u.Path, "/app/")
	app, _, _ = strings.Cut(app, "/")
	if !ok || app == "" || strings.EqualFold(app, "engineData") {
		return "", fmt.Errorf("-url %q: want ws://host/app/<app id>", rawURL)
	}
	return app, nil
}

// runWS measures Engine round trips: each socket opens the app, sets its
// script so that GetScript answers o.size bytes, then calls GetScript in
// a loop for o.duration.
func runWS(ctx context.Context, o options) (bench.Result, error) {
	app, err := appOf(o.url)
	if err != nil {
		return bench.Result{}, err
	}
	// The answer is {"jsonrpc":"2.0","id":N,"result":{"qScript":"…"}}.
	scriptLen := max(o.size-48, 1)
	script := make([]byte, scriptLen)
	for i := range script {
		script[i] = "abcdefghijklmnopqrstuvwxyz012345 "[i%33]
	}
	setParams := `["` + string(script) + `"]`

	d := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	conns := make([]*engineConn, o.conns)
	var setup sync.WaitGroup
	errs := make([]error, o.conns)
	for i := range conns {
		setup.Go(func() {
			c, err := dialEngine(ctx, d, o.url, o, "")
			if err == nil {
				_, err = c.call("OpenDoc", -1, `["`+app+`"]`)
			}
			if err == nil {
				_, err = c.call("SetScript", 1, setParams)
			}
			if err == nil {
				var a []byte
				if a, err = c.call("GetScript", 1, "[]"); err == nil && len(a) < scriptLen {
					err = fmt.Errorf("GetScript answered %d bytes, want at least %d", len(a), scriptLen)
				}
			}
			conns[i], errs[i] = c, err
		})
	}
	setup.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return bench.Result{}, fmt.Errorf("setting up %d sockets: %w", o.conns, err)
	}

	type partial struct {
		ops, bytes int64
		lat        bench.Latencies
		errs       errorCount
	}
	parts := make([]partial, len(conns))
	start := time.Now()
	end := start.Add(o.duration)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			p := &parts[i]
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				a, err := c.call("GetScript", 1, "[]")
				if err != nil {
					p.errs.add(err)
					return // the socket is unusable
				}
				p.lat.Add(time.Since(t0))
				p.ops++
				p.bytes += int64(len(a))
			}
		})
	}
	wg.Wait()
	r := bench.Result{Seconds: time.Since(start).Seconds()}
	var lat bench.Latencies
	var ec errorCount
	for i := range parts {
		r.Ops += parts[i].ops
		r.Bytes += parts[i].bytes
		lat.Merge(&parts[i].lat)
		ec.merge(parts[i].errs)
	}
	r.P50, r.P99 = lat.Percentile(50), lat.Percentile(99)
	r.Errors, r.FirstError = ec.n, ec.first
	return r, nil
}

// runIdle opens o.conns sockets, makes one Engine call on each so that a
// proxy relays them, prints a ready line, and holds them idle until
// standard input closes.
func runIdle(ctx context.Context, o options) (bench.Result, error) {
	d := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	conns := make([]*engineConn, o.conns)
	var ec errorCount
	var mu sync.Mutex
	took := forUsers(len(conns), o.parallel, func(i int) {
		user := ""
		if o.userHeader != "" {
			user = o.user(i % max(o.users, 1))
		}
		c, err := dialEngine(ctx, d, o.url, o, user)
		if err == nil {
			if _, err = c.call("EngineVersion", -1, "[]"); err != nil {
				c.close()
			}
		}
		if err != nil {
			mu.Lock()
			ec.add(err)
			mu.Unlock()
			return
		}
		conns[i] = c
	})
	r := bench.Result{Ready: true, Seconds: took.Seconds(), Errors: ec.n, FirstError: ec.first}
	for _, c := range conns {
		if c != nil {
			r.Conns++
		}
	}
	emit(r)

	// Hold until standard input closes or the run's bound passes.
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	for _, c := range conns {
		if c != nil {
			c.ws.Close()
		}
	}
	r.Ready = false
	return r, nil
}
