package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad loads arbitrary YAML. Load must not panic; it returns either a
// Config that validates again, or an error whose every joined problem is
// a non-empty line. "@CERT@" and "@KEY@" in the input stand for a real
// client certificate and key, so that the success path is reachable.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`
qlik:
  url: https://qlik.example.com
  user_directory: ACME
  qps:
    url: https://qlik.example.com:4243
    client_cert: "@CERT@"
    client_key: "@KEY@"
identity:
  header:
    trusted_proxies: [127.0.0.1/32]
`))
	f.Add([]byte(`
qlik:
  url: https://qlik.example.com
  prefix: sales
  user_directory: ACME
  qps: {url: "https://qlik.example.com:4243", client_cert: "@CERT@", client_key: "@KEY@", retries: 2}
identity: {provider: static, static: {user: 'ACME\dev'}}
routes:
  - {path: /mashup/, upstream: "http://127.0.0.1:3000", strip_prefix: true}
`))
	f.Add([]byte(""))
	f.Add([]byte("{}"))
	f.Add([]byte("[]"))
	f.Add([]byte("null"))
	f.Add([]byte("server: 1"))
	f.Add([]byte("server:\n  shutdown_grace: soon\n  timeout: 1.5\n"))
	f.Add([]byte("qlik:\n  qps:\n    retries: 2.5\n"))
	f.Add([]byte("routes: notalist\n"))
	f.Add([]byte("routes:\n  - 1\n  - path: [a]\n"))
	f.Add([]byte("serverr:\n  listen: x\nqlik:\n  urll: y\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("x: !!binary AAAA\n"))
	f.Add([]byte("\t- : :\n"))
	f.Add([]byte("store:\n  encryption_keys: 'a, b  c'\n  type: redis\n  redis: {db: -1}\n"))
	f.Add([]byte("identity:\n  header:\n    trusted_proxies: [\"10.0.0.300\", 0.0.0.0/0]\n"))
	f.Add([]byte("log:\n  level: 99999999999999999999999\n"))
	f.Add([]byte("? [a, b]\n: c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		clearEnv(t)
		s := string(data)
		if strings.Contains(s, "@CERT@") || strings.Contains(s, "@KEY@") {
			c := writeCerts(t)
			s = strings.NewReplacer("@CERT@", c.cert, "@KEY@", c.key).Replace(s)
		}
		path := filepath.Join(t.TempDir(), "sensegate.yaml")
		writeFile(t, filepath.Dir(path), filepath.Base(path), s)
		c, err := Load(path)
		if err != nil {
			if c != nil {
				t.Fatalf("Load returned both a Config and an error: %v", err)
			}
			checkProblems(t, err)
			return
		}
		if c == nil {
			t.Fatal("Load returned neither a Config nor an error")
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("a loaded Config does not validate again: %v\ninput:\n%s", err, s)
		}
	})
}

// checkProblems fails if err or one of the errors it joins is blank.
func checkProblems(t *testing.T, err error) {
	t.Helper()
	if strings.TrimSpace(err.Error()) == "" {
		t.Fatalf("blank error %#v", err)
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e == nil || strings.TrimSpace(e.Error()) == "" {
				t.Fatalf("blank problem in %q", err.Error())
			}
			var p problem
			if errors.As(e, &p) && p.err == nil {
				t.Fatalf("problem without an error in %q", err.Error())
			}
		}
	}
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if strings.TrimSpace(line) == "" {
			t.Fatalf("blank line in the problems %q", err.Error())
		}
	}
}
