package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sensegate/sensegate/bench"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

// What the simulator serves for the workloads.
const (
	smallPath = "/resources/bench/1k.js"
	largePath = "/resources/bench/1m.js"
	smallSize = 1 << 10
	largeSize = 1 << 20
	// benchApp is the seed's app open to every user (Company Handbook).
	benchApp = "5a8a1b2c-0003-4c1e-9d3f-000000000003"
	// benchUser is the warm user of the throughput workloads.
	benchUser  = "bench"
	directory  = "ACME"
	userHeader = "X-Forwarded-User"
	// wantNofile is the open-file limit the harness asks for: sensegate
	// holds two descriptors per relayed websocket.
	wantNofile = 1 << 18
)

// target is one way to reach the simulator.
type target struct {
	name string
	// base is the target's http:// origin.
	base string
	// auth are the headers that make a request the bench user's: a Qlik
	// session cookie, or sensegate's identity header.
	auth []string
	// proc is the proxy process (nil for direct), and tree whether its
	// memory includes its children's (nginx's workers).
	proc *proc
	tree bool
}

// harness owns the temporary directory and the processes.
type harness struct {
	o       options
	dir     string
	certDir string
	procs   []*proc
	report  *bench.Report
	nofile  uint64

	simProxy, simQPS, simAdmin string
	sgAdmin                    string
	targets                    []*target
	byName                     map[string]*target

	// round is the current round of the throughput workloads, pacedRate
	// the fixed rate of the latency workload (set in the first round).
	round     int
	pacedRate int
}

func newHarness(o options) (*harness, error) {
	for _, name := range []string{"sensegate", "qliksim", "loadgen", "bareproxy"} {
		if _, err := os.Stat(filepath.Join(o.bin, name)); err != nil {
			return nil, fmt.Errorf("%s: build the programs first (scripts/bench.sh does): %w", name, err)
		}
	}
	for _, tool := range []string{o.wrk, o.nginx} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found (scripts/bench.sh installs it from Debian): %w", tool, err)
		}
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return nil, err
	}
	o.bin = bin
	dir, err := os.MkdirTemp("", "sensegate-bench-")
	if err != nil {
		return nil, err
	}
	h := &harness{o: o, dir: dir, certDir: filepath.Join(dir, "certs"), byName: map[string]*target{}}
	h.nofile = raiseNofile()
	h.report = &bench.Report{Date: time.Now(), Machine: h.machine()}
	return h, nil
}

// raiseNofile raises the open-file limit (children inherit it) as far as
// allowed and returns it.
func raiseNofile() uint64 {
	var l syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	want := syscall.Rlimit{Cur: wantNofile, Max: max(l.Max, wantNofile)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		// Not privileged: the soft limit can still rise to the hard one.
		want = syscall.Rlimit{Cur: l.Max, Max: l.Max}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
	}
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

// close stops every process, newest first, and removes the directory.
func (h *harness) close() {
	for i := len(h.procs) - 1; i >= 0; i-- {
		h.procs[i].stop()
	}
	if h.o.keep {
		logf("configurations and logs kept in %s", h.dir)
		return
	}
	os.RemoveAll(h.dir)
}

func (h *harness) start(name string, env []string, argv ...string) (*proc, error) {
	p, err := start(h.dir, name, env, argv...)
	if err == nil {
		h.procs = append(h.procs, p)
	}
	return p, err
}

func (h *harness) addTarget(t *target) {
	h.targets = append(h.targets, t)
	h.byName[t.name] = t
}

// startAll starts the simulator and the three proxies and checks that each
// target serves the bench user.
func (h *harness) startAll(ctx context.Context) error {
	if _, err := qliksim.EnsureCerts(h.certDir, nil); err != nil {
		return err
	}
	var simProxy, simQPS, simAdmin, bareAddr, nginxAddr, sgAddr, sgAdmin string
	for _, p := range []*string{&simProxy, &simQPS, &simAdmin, &bareAddr, &nginxAddr, &sgAddr, &sgAdmin} {
		a, err := freePort()
		if err != nil {
			return err
		}
		*p = a
	}
	h.simProxy, h.simQPS, h.simAdmin = "http://"+simProxy, "https://"+simQPS, "http://"+simAdmin
	h.sgAdmin = "http://" + sgAdmin

	// The simulator.
	simCfg := filepath.Join(h.dir, "qliksim.yaml")
	if err := os.WriteFile(simCfg, []byte(fmt.Sprintf(simConfig, simProxy, simQPS, simAdmin, h.certDir,
		smallPath, smallSize, largePath, largeSize)), 0o644); err != nil {
		return err
	}
	sim, err := h.start("qliksim", nil, filepath.Join(h.o.bin, "qliksim"), "--config", simCfg)
	if err != nil {
		return err
	}
	for _, a := range []string{simProxy, simQPS, simAdmin} {
		if err := waitReady(ctx, sim, 20*time.Second, dialable(a)); err != nil {
			return err
		}
	}

	// A Qlik session of the bench user's own, for the targets without sensegate.
	qps, err := bench.QPSClient(h.certDir)
	if err != nil {
		return err
	}
	cookie, err := bench.Login(ctx, qps, http.DefaultClient, h.simQPS, h.simProxy, smallPath, directory, benchUser)
	if err != nil {
		return fmt.Errorf("bench user's Qlik login: %w", err)
	}
	cookieAuth := []string{"Cookie: " + cookie.Name + "=" + cookie.Value}
	h.addTarget(&target{name: bench.Direct, base: h.simProxy, auth: cookieAuth})

	bare, err := h.start("bareproxy", nil, filepath.Join(h.o.bin, "bareproxy"), "-listen", bareAddr, "-upstream", h.simProxy)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, bare, 20*time.Second, dialable(bareAddr)); err != nil {
		return err
	}
	h.addTarget(&target{name: bench.Bare, base: "http://" + bareAddr, auth: cookieAuth, proc: bare})

	ngDir := filepath.Join(h.dir, "nginx")
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(ngDir, d), 0o755); err != nil {
			return err
		}
	}
	ngConf := filepath.Join(ngDir, "nginx.conf")
	if err := os.WriteFile(ngConf, []byte(fmt.Sprintf(nginxConfig, h.nofile, simProxy, nginxAddr)), 0o644); err != nil {
		return err
	}
	ng, err := h.start("nginx", nil, h.o.nginx, "-p", ngDir, "-c", ngConf, "-e", filepath.Join(ngDir, "logs", "error.log"), "-g", "daemon off;")
	if err != nil {
		return err
	}
	if err := waitReady(ctx, ng, 20*time.Second, dialable(nginxAddr)); err != nil {
		return err
	}
	h.addTarget(&target{name: bench.Nginx, base: "http://" + nginxAddr, auth: cookieAuth, proc: ng, tree: true})

	var sgEnv []string
	if g := h.o.sensegateGOGC; g != "" {
		sgEnv = append(sgEnv, "GOGC="+g)
		h.note("sensegate ran with GOGC=%s (the other Go processes with Go's default)", g)
	}
	sensegates := []struct{ name, bin, addr, admin string }{{bench.Sensegate, filepath.Join(h.o.bin, "sensegate"), sgAddr, sgAdmin}}
	if h.o.baseline != "" {
		addr, err1 := freePort()
		admin, err2 := freePort()
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		sensegates = append(sensegates, struct{ name, bin, addr, admin string }{bench.Baseline, h.o.baseline, addr, admin})
		h.note("The baseline is another sensegate binary (%s) with the same configuration, measured in the same rounds.", h.o.baseline)
	}
	for _, s := range sensegates {
		cfg := filepath.Join(h.dir, s.name+".yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(sensegateConfig, s.addr, s.addr, simProxy, qliksim.DefaultCookieName+"-HTTP",
			directory, h.certDir, simQPS, h.certDir, h.certDir, userHeader, s.admin, h.o.profile != "" && s.name == bench.Sensegate)), 0o644); err != nil {
			return err
		}
		p, err := h.start(s.name, sgEnv, s.bin, "serve", "--config", cfg)
		if err != nil {
			return err
		}
		if err := waitReady(ctx, p, 30*time.Second, httpOK("http://"+s.admin+"/readyz")); err != nil {
			return err
		}
		t := &target{name: s.name, base: "http://" + s.addr, auth: []string{userHeader + ": " + benchUser}, proc: p}
		h.addTarget(t)
		if err := h.warm(ctx, t); err != nil {
			return err
		}
	}
	for _, t := range h.targets {
		if err := check(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// warm sends the bench user's first request through sg, a sensegate, so
// that its jar holds their session, and checks at the simulator that it
// ran as them.
func (h *harness) warm(ctx context.Context, sg *target) error {
	tag := "bench-warm-" + sg.name
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sg.base+smallPath, nil)
	req.Header.Set(userHeader, benchUser)
	req.Header.Set("X-Sim-Tag", tag)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("warming %s: %w", sg.name, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("warming %s: status %d", sg.name, resp.StatusCode)
	}
	var events []qliksim.Event
	if err := getJSON(ctx, h.simAdmin+"/events", &events); err != nil {
		return err
	}
	want := directory + `\` + benchUser
	for _, e := range events {
		if e.Tag == tag {
			if e.User != want || e.Status != http.StatusOK {
				return fmt.Errorf("warming %s: the simulator saw user %q status %d, want %q 200", sg.name, e.User, e.Status, want)
			}
			return nil
		}
	}
	return fmt.Errorf("warming %s: the request did not reach the simulator", sg.name)
}

// check makes one request of each size through t.
func check(ctx context.Context, t *target) error {
	for path, size := range map[string]int{smallPath: smallSize, largePath: largeSize} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.base+path, nil)
		for _, kv := range t.auth {
			k, v, _ := strings.Cut(kv, ": ")
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != int64(size) {
			return fmt.Errorf("%s: GET %s = %d with %d bytes, want 200 with %d", t.name, path, resp.StatusCode, n, size)
		}
	}
	return nil
}

func httpOK(url string) func() error {
	return func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", url, resp.StatusCode)
		}
		return nil
	}
}

// machine collects the facts the report starts with.
func (h *harness) machine() bench.Machine {
	m := bench.Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	firstLine := func(argv ...string) string {
		out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		line, _, _ := strings.Cut(string(out), "\n")
		return strings.TrimSpace(line)
	}
	m.Nginx = strings.TrimPrefix(firstLine(h.o.nginx, "-v"), "nginx version: ")
	m.Wrk, _, _ = strings.Cut(strings.TrimPrefix(firstLine(h.o.wrk, "-v"), "wrk "), " ")
	m.Revision = strings.TrimPrefix(firstLine(filepath.Join(h.o.bin, "sensegate"), "version"), "sensegate ")
	return m
}

// simConfig is the simulator's configuration: plain HTTP (cookies get
// "-HTTP"), the two static resources, a host allow list for 127.0.0.1
// and a small request log.
const simConfig = `proxy_listen: %s
qps_listen: %s
admin_listen: %s
proxy_http: true
cert_dir: %s
max_events: 10000
static_resources:
  - {path: %s, size: %d}
  - {path: %s, size: %d}
virtual_proxies:
  - prefix: ""
    session_cookie: X-Qlik-Session
    host_allow_list: [localhost, 127.0.0.1]
`

// nginxConfig is nginx as a tuned reverse proxy: keep-alive to the
// upstream, websocket upgrades, no access log, no buffering to disk.
const nginxConfig = `worker_processes auto;
worker_rlimit_nofile %d;
pid nginx.pid;
events {
    worker_connections 65536;
}
http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }
    upstream qlik {
        server %s;
        keepalive 256;
    }
    server {
        listen %s;
        location / {
            proxy_pass http://qlik;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
    }
}
`

// sensegateConfig is sensegate behind a trusted front door on loopback
// (identity header), with default settings otherwise, but for the bound
// on websockets per user: one user holds all the sockets of a websocket
// workload.
const sensegateConfig = `server:
  listen: %s
  public_url: http://%s
qlik:
  url: http://%s
  websocket_per_user: 0
  session_cookie: %s
  user_directory: %s
  ca: %s/root.pem
  qps:
    url: https://%s
    client_cert: %s/client.pem
    client_key: %s/client_key.pem
identity:
  provider: header
  header:
    name: %s
    trusted_proxies: ["127.0.0.1/32"]
admin:
  listen: %s
  pprof: %t
`

// profiled runs run, a workload's measured load against t, and with
// -profile, when t is sensegate, fetches sensegate's CPU profile and its
// allocations over secs seconds of it into the profile directory as
// NAME.cpu.pprof and NAME.allocs.pprof.
func (h *harness) profiled(ctx context.Context, t *target, name string, secs int, run func()) {
	if h.o.profile == "" || t.name != bench.Sensegate || secs < 2 {
		run()
		return
	}
	if err := os.MkdirAll(h.o.profile, 0o755); err != nil {
		h.note("profile: %v", err)
		run()
		return
	}
	// A second less than the load, so that the profile sees only load.
	secs--
	errs := make(chan error, 2)
	for kind, path := range map[string]string{"cpu": "/debug/pprof/profile", "allocs": "/debug/pprof/allocs"} {
		file := filepath.Join(h.o.profile, fmt.Sprintf("%s-round%d.%s.pprof", name, h.round+1, kind))
		go func() { errs <- fetch(ctx, fmt.Sprintf("%s%s?seconds=%d", h.sgAdmin, path, secs), file) }()
	}
	run()
	for range 2 {
		if err := <-errs; err != nil {
			h.note("profile of %s: %v", name, err)
		}
	}
}

// get GETs url and returns the answer's body, to close, when its status
// is 200.
func get(ctx context.Context, url string) (io.ReadCloser, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return resp.Body, nil
}

// fetch writes the body of a GET of url to file.
func fetch(ctx context.Context, url, file string) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
