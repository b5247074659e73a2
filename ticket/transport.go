package ticket

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"
)

// This file is one attempt of a call on the wire: the HTTP transports,
// the Xrfkey, and what is sent and read. How often a call is attempted
// is the retrier's (retry.go).

const (
	// maxBody bounds the bytes read from any answer.
	maxBody = 1 << 20
	// maxErrorPage bounds what is kept of a proxy-side error page.
	maxErrorPage = 4 << 10
	// maxDrain bounds what is read of a proxy-side answer's body (a
	// redemption's resource, a CSRF token answer) to put its connection
	// back in the pool. The redeem path is meant to be a small resource;
	// the bound keeps a large one (a misconfigured path) from making every
	// login read it whole: its body is abandoned, which closes the
	// connection, and the next redemption pays a new one.
	maxDrain = 64 << 10
	// maxIdlePerHost keeps connections to QPS and to the Qlik proxy for
	// bursts of logins (the net/http default is 2).
	maxIdlePerHost = 16
	// proxyIdleTimeout closes a pooled proxy-side connection idle that
	// long. It is well under the keep-alive timeouts servers and load
	// balancers use (HTTP.sys and IIS 120 s, Kestrel 130 s, nginx 75 s,
	// AWS ALB 60 s), so that sensegate, not the server, closes an idle
	// connection: a server's close that crosses a redemption on the wire
	// leaves the ticket's fate unknown and costs a second ticket (see
	// Client.Login). A server that closes sooner (Apache's 5 s) is seen
	// closing while the connection is idle, which takes it out of the
	// pool.
	proxyIdleTimeout = 30 * time.Second
	// xrfkeyLen and xrfkeyChars are Qlik's Xrfkey rules: 16 characters
	// of [0-9a-zA-Z].
	xrfkeyLen   = 16
	xrfkeyChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// newTransport clones http.DefaultTransport (proxy from environment, dial
// and TLS handshake timeouts) with tlsCfg.
func newTransport(tlsCfg *tls.Config) *http.Transport {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = maxIdlePerHost
	return tr
}

// newHTTP1Transport is newTransport without HTTP/2: no "h2" offered in
// the TLS handshake, so every request is an HTTP/1.1 exchange.
func newHTTP1Transport(tlsCfg *tls.Config) *http.Transport {
	tr := newTransport(tlsCfg)
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return tr
}

// newXrfkey returns a fresh Xrfkey: 16 characters of [0-9a-zA-Z] from
// crypto/rand, by rejection sampling so that every character is equally
// likely.
func newXrfkey() string {
	const limit = 256 - 256%len(xrfkeyChars)
	out := make([]byte, 0, xrfkeyLen)
	buf := make([]byte, 2*xrfkeyLen)
	for len(out) < xrfkeyLen {
		rand.Read(buf) // never fails (crypto/rand)
		for _, b := range buf {
			if int(b) < limit && len(out) < xrfkeyLen {
				out = append(out, xrfkeyChars[int(b)%len(xrfkeyChars)])
			}
		}
	}
	return string(out)
}

// unreplayable is the body of a request that net/http's Transport must
// never send twice (a redemption): see attempt.
type unreplayable struct{}

func (unreplayable) Read([]byte) (int, error) { return 0, io.EOF }
func (unreplayable) Close() error             { return nil }

// request is one logical call, made in one or more attempts.
type request struct {
	op     string
	user   string // "DIRECTORY\id", for logs and errors
	method string
	url    *url.URL // without the xrfkey
	body   []byte
	qps    bool // a QPS API call: Xrfkey, client certificate, JSON body read
	// retry is what sending the request twice risks (retry.go).
	retry retryPolicy
	// uncapped exempts a QPS call from Config.MaxConcurrent (Ping).
	uncapped bool
	// secret is a value to scrub from errors (ticket, session id).
	secret string
	// header holds extra request headers (proxy side: Cookie, Origin).
	header http.Header
	// fresh sends a proxy-side request on a new connection, closed after
	// the answer, instead of one from the pool.
	fresh bool
}

// where names the server of r for messages.
func (r *request) where() string {
	if r.qps {
		return "QPS at " + r.url.Host
	}
	return "the Qlik proxy at " + r.url.Host
}

// response is what an attempt read from an answer.
type response struct {
	status  int
	header  http.Header
	body    []byte // QPS calls, or the start of a proxy-side error page
	cookies []*http.Cookie
	attempt int
}

// errTooLarge marks an answer body over maxBody.
var errTooLarge = fmt.Errorf("answer body larger than %d bytes", maxBody)

// attempt makes one attempt of r. wrote reports whether the request may
// have reached the server.
func (c *Client) attempt(ctx context.Context, r *request) (res *response, wrote bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var sent, reused atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:      func(i httptrace.GotConnInfo) { reused.Store(i.Reused) },
		WroteHeaders: func() { sent.Store(true) },
		WroteRequest: func(httptrace.WroteRequestInfo) { sent.Store(true) },
	})
	u := *r.url
	var key string
	if r.qps {
		key = newXrfkey()
		u.RawQuery = "xrfkey=" + key
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, false, err
	}
	if r.retry == retryUnsent && r.body == nil {
		// net/http's Transport re-sends a request on its own when a reused
		// connection breaks before the answer, if the request is
		// idempotent and has no body or can make it again (GetBody): a GET
		// with a nil Body or http.NoBody would be re-sent. A Body other
		// than http.NoBody, without GetBody, keeps it to one send (the
		// Transport doc comment; TestRedeemNotResentOnReusedConnection).
		// Over HTTP/1.1 it sends no body all the same: for a GET with such
		// a Body and ContentLength 0 it reads one byte and, on EOF, sends
		// neither a body nor Content-Length nor Transfer-Encoding
		// (transferWriter.probeRequestBody; TestRedeemWireHasNoBody). Only
		// if that read took over 200 ms would it announce a chunked body
		// and send it empty: still once.
		req.Body, req.GetBody, req.ContentLength = unreplayable{}, nil, 0
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	client := c.proxy
	if r.fresh {
		client = c.fresh
	}
	if r.qps {
		client = c.qps
		req.Header.Set("X-Qlik-Xrfkey", key)
		req.Header.Set("Accept", "application/json")
		if r.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	req.Header.Set("User-Agent", "sensegate")
	resp, err := client.Do(req)
	if err != nil {
		if reused.Load() {
			// No answer on a pooled connection: it may have broken just
			// as the server closed it, and whether the server read the
			// request is unknown (Client.Login). The *url.Error, which
			// quotes the URL and so a ticket, is not kept.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			err = &reusedConnError{err}
		}
		return nil, sent.Load(), err
	}
	defer resp.Body.Close()
	res = &response{status: resp.StatusCode, header: resp.Header, cookies: resp.Cookies()}
	if r.qps {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
		if err != nil {
			return nil, true, err
		}
		if len(b) > maxBody {
			return nil, true, errTooLarge
		}
		res.body = b
	} else {
		// Keep the start of an error page (it may explain a refusal), and
		// drain the rest, up to maxDrain, so that the connection goes back
		// to the pool; Close closes it when the body goes on past that.
		// (An answer with Connection: close never goes back.) The cookie
		// came with the headers, so a failure here does not matter.
		if resp.StatusCode >= 400 {
			res.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorPage))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	}
	return res, true, nil
}
