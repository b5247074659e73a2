package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sensegate/sensegate/tooling/qliksim"
)

// xrfkey is the fixed Xrfkey pair of the harness's QPS calls.
const xrfkey = "0123456789abcdef"

// QPSClient returns a client of the simulator's QPS API that presents the
// client certificate of the export in certDir.
func QPSClient(certDir string) (*http.Client, error) {
	cfg, err := qliksim.CertFilesIn(certDir).ClientTLS()
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	return &http.Client{Transport: t, Timeout: 30 * time.Second}, nil
}

// Ticket requests a ticket for DIRECTORY\id from QPS at qpsURL.
func Ticket(ctx context.Context, qps *http.Client, qpsURL, dir, id string) (string, error) {
	body, _ := json.Marshal(map[string]string{"UserDirectory": dir, "UserId": id})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, qpsURL+"/qps/ticket?xrfkey="+xrfkey, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Qlik-Xrfkey", xrfkey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := qps.Do(req)
	if err != nil {
		return "", fmt.Errorf("ticket: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var t struct{ Ticket string }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &t) != nil || t.Ticket == "" {
		return "", fmt.Errorf("ticket: status %d: %.200s", resp.StatusCode, b)
	}
	return t.Ticket, nil
}

// Redeem redeems ticket with a GET of path on the proxy side at proxyURL
// and returns the session cookie Qlik sets (its name starts with
// X-Qlik-Session).
func Redeem(ctx context.Context, proxy *http.Client, proxyURL, path, ticket string) (*http.Cookie, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, proxyURL+path+"?qlikTicket="+ticket, nil)
	if err != nil {
		return nil, err
	}
	resp, err := proxy.Do(req)
	if err != nil {
		return nil, fmt.Errorf("redeem: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("redeem: status %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, qliksim.DefaultCookieName) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("redeem: no session cookie in %q", resp.Header.Values("Set-Cookie"))
}

// Login logs DIRECTORY\id in to the simulator as a mashup without
// sensegate does: a ticket from QPS, redeemed on path.
func Login(ctx context.Context, qps, proxy *http.Client, qpsURL, proxyURL, path, dir, id string) (*http.Cookie, error) {
	t, err := Ticket(ctx, qps, qpsURL, dir, id)
	if err != nil {
		return nil, err
	}
	return Redeem(ctx, proxy, proxyURL, path, t)
}
