package sensegatetest

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// Do sends a request of method to url with the headers hdr (name, value
// pairs) on a client of its own, whose connections it closes, and returns
// the response, its body read and closed, and the body.
func Do(t testing.TB, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Get is Do of GET, returning the status and the body.
func Get(t testing.TB, url string, hdr ...string) (int, string) {
	t.Helper()
	resp, body := Do(t, "GET", url, hdr...)
	return resp.StatusCode, body
}

// HubAs asks sensegate at addr for Qlik's hub as user, named in the
// request header header (the header identity's), and returns the status.
func HubAs(t testing.TB, addr, header, user string) int {
	t.Helper()
	code, _ := Get(t, "http://"+addr+"/hub/", header, user)
	return code
}
