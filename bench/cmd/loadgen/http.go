package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/sensegate/sensegate/bench"
)

// httpClient returns a keep-alive client with room for n connections.
func httpClient(n int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = max(n, 2)
	return &http.Client{
		Transport:     t,
		Timeout:       time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get sends a GET as user and reads the answer; it returns the time to the
// response headers (the first byte).
func get(ctx context.Context, c *http.Client, o options, user string) (time.Duration, error) {
	ttfb, err := fetch(ctx, c, o.url, o.header(user))
	if err != nil && user != "" {
		err = fmt.Errorf("%w as %s", err, user)
	}
	return ttfb, err
}

// fetch sends a GET of url with hdr, reads the answer, which must be 200,
// and returns the time to its first byte.
func fetch(ctx context.Context, c *http.Client, url string, hdr http.Header) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header = hdr
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	ttfb := time.Since(t0)
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return ttfb, nil
}

// collector gathers latencies and errors from concurrent workers.
type collector struct {
	mu   sync.Mutex
	lat  bench.Latencies
	errs errorCount
	ops  int64
}

func (c *collector) record(d time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.errs.add(err)
		return
	}
	c.ops++
	c.lat.Add(d)
}

func (c *collector) result(seconds float64) bench.Result {
	return bench.Result{
		Ops: c.ops, Seconds: seconds,
		P50: c.lat.Percentile(50), P99: c.lat.Percentile(99),
		Errors: c.errs.n, FirstError: c.errs.first,
	}
}

// runRate sends o.rate requests per second in all over o.conns
// connections for o.duration, each connection on a fixed schedule, and
// measures each request's latency from when it was due: a late answer
// delays the next request of its connection, and that delay is counted
// (no coordinated omission).
func runRate(ctx context.Context, o options) (bench.Result, error) {
	if o.rate <= 0 || o.conns <= 0 {
		return bench.Result{}, errors.New("rate: -rate and -conns must be positive")
	}
	c := httpClient(o.conns)
	c.Transport.(*http.Transport).MaxConnsPerHost = o.conns
	interval := time.Duration(float64(time.Second) * float64(o.conns) / o.rate)
	var col collector
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(o.duration)
	for i := range o.conns {
		wg.Go(func() {
			due := start.Add(interval * time.Duration(i) / time.Duration(o.conns))
			t := time.NewTimer(time.Until(due))
			defer t.Stop()
			for due.Before(end) {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				_, err := get(ctx, c, o, "")
				col.record(time.Since(due), err)
				due = due.Add(interval)
				t.Reset(time.Until(due))
			}
		})
	}
	wg.Wait()
	return col.result(time.Since(start).Seconds()), nil
}

// runBurst logs in o.users users who have never been seen, o.parallel of
// them at a time, each with o.perUser concurrent first requests, and
// measures the time to first byte of every request.
func runBurst(ctx context.Context, o options) (bench.Result, error) {
	if o.userHeader == "" {
		return bench.Result{}, errors.New("burst: -user-header is required")
	}
	c := httpClient(o.parallel * o.perUser)
	var col collector
	took := forUsers(o.users, o.parallel, func(i int) {
		user := o.user(i)
		var uw sync.WaitGroup
		for range o.perUser {
			uw.Go(func() { col.record(get(ctx, c, o, user)) })
		}
		uw.Wait()
	})
	return col.result(took.Seconds()), nil
}

// forUsers calls f for each number below n (a user's, a socket's), parallel
// calls at a time, and returns how long they took.
func forUsers(n, parallel int, f func(i int)) time.Duration {
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
	return time.Since(start)
}

// runUsers sends one request for each of o.users users, o.parallel at a
// time: with sensegate in front, each is a login and a jar entry.
func runUsers(ctx context.Context, o options) (bench.Result, error) {
	if o.userHeader == "" {
		return bench.Result{}, errors.New("users: -user-header is required")
	}
	c := httpClient(o.parallel)
	var col collector
	took := forUsers(o.users, o.parallel, func(i int) { col.record(get(ctx, c, o, o.user(i))) })
	return col.result(took.Seconds()), nil
}

// runLogin measures what a client without sensegate spends on its first
// requests: a ticket from QPS and its redemption, for o.users users,
// o.parallel at a time, over keep-alive connections. With o.perUser > 0
// each user then sends that many concurrent requests with the session
// cookie, the work of a burst through sensegate, and the result is their
// time to first byte counted from the start of the login, with the logins'
// own percentiles apart.
func runLogin(ctx context.Context, o options) (bench.Result, error) {
	qps, err := bench.QPSClient(o.certDir)
	if err != nil {
		return bench.Result{}, err
	}
	qps.Transport.(*http.Transport).MaxIdleConnsPerHost = max(o.parallel, 2)
	u, err := url.Parse(o.url)
	if err != nil {
		return bench.Result{}, err
	}
	base, path := u.Scheme+"://"+u.Host, u.Path
	proxy := httpClient(o.parallel)
	firsts := httpClient(o.parallel * max(o.perUser, 1))
	var logins, col collector
	// login logs user in and, with o.perUser, sends the first requests;
	// record says whether to count it (warm-up logins are not).
	login := func(user string, record bool) {
		t0 := time.Now()
		cookie, err := bench.Login(ctx, qps, proxy, o.qpsURL, base, path, o.directory, user)
		if !record {
			return
		}
		logins.record(time.Since(t0), err)
		if err != nil || o.perUser <= 0 {
			col.record(time.Since(t0), err)
			return
		}
		var uw sync.WaitGroup
		for range o.perUser {
			uw.Go(func() {
				_, err := fetch(ctx, firsts, o.url, http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}})
				col.record(time.Since(t0), err)
			})
		}
		uw.Wait()
	}
	// Unmeasured logins open the connections: the TLS handshake with QPS
	// is not part of a login over a warm pool.
	var warm sync.WaitGroup
	for i := range max(o.parallel, 1) {
		warm.Go(func() { login(o.user(o.users+i), false) })
	}
	warm.Wait()
	took := forUsers(o.users, o.parallel, func(i int) { login(o.user(i), true) })
	r := col.result(took.Seconds())
	r.LoginP50, r.LoginP99 = logins.lat.Percentile(50), logins.lat.Percentile(99)
	return r, nil
}
