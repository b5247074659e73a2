// Command loadgen is the benchmark's load generator for what wrk does not
// do: Engine websocket round trips, HTTP latency at a fixed rate,
// cold-login bursts, many users, many idle sockets, and a client's own
// Qlik login. It prints one JSON line
// (bench.Result) on standard output; idle prints one when its sockets are
// open, then holds them until standard input closes.
//
//	loadgen ws    -url ws://…/app/ID -conns 64 -size 1024 -duration 8s -header 'Cookie: …'
//	loadgen rate  -url http://…/resources/… -conns 64 -rate 5000 -duration 8s -header 'Cookie: …'
//	loadgen burst -url http://…/resources/… -users 500 -per-user 10 -parallel 8 -user-header X-Forwarded-User
//	loadgen login -qps https://… -url http://…/resources/… -certs DIR -users 50
//	loadgen users -url http://…/resources/… -users 10000 -parallel 32 -user-header X-Forwarded-User
//	loadgen idle  -url ws://…/app/engineData -conns 10000 -user-header X-Forwarded-User
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sensegate/sensegate/bench"
)

// options are the flags of every mode; each mode reads those it needs.
type options struct {
	url        string
	headers    headerFlags
	duration   time.Duration
	timeout    time.Duration
	conns      int
	rate       float64
	size       int
	users      int
	perUser    int
	parallel   int
	userHeader string
	userPrefix string
	qpsURL     string
	certDir    string
	directory  string
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen ws|rate|burst|login|users|idle [flags]")
		os.Exit(2)
	}
	mode := os.Args[1]
	var o options
	fs := flag.NewFlagSet("loadgen "+mode, flag.ExitOnError)
	fs.StringVar(&o.url, "url", "", "target URL (ws:// for ws and idle, http:// otherwise)")
	fs.Var(&o.headers, "header", "extra request header 'Name: value' (repeatable)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "ws, rate: how long to measure")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run (idle: on holding the sockets too)")
	fs.IntVar(&o.conns, "conns", 64, "ws, idle: number of websockets; rate: connections")
	fs.Float64Var(&o.rate, "rate", 1000, "rate: requests per second in all")
	fs.IntVar(&o.size, "size", 1024, "ws: size in bytes of each answer (GetScript of a script set to that size)")
	fs.IntVar(&o.users, "users", 500, "burst, login, users: number of distinct users; idle: users the sockets cycle through")
	fs.IntVar(&o.perUser, "per-user", 10, "burst, login: concurrent first requests per user (login: 0 for logins only)")
	fs.IntVar(&o.parallel, "parallel", 8, "burst, login: users in flight at once; users, idle: requests or dials in flight")
	fs.StringVar(&o.userHeader, "user-header", "", "send the user name in this header (sensegate's identity.header.name)")
	fs.StringVar(&o.userPrefix, "user-prefix", "user-", "user names are this prefix and a number")
	fs.StringVar(&o.qpsURL, "qps", "", "login: the QPS API's base URL")
	fs.StringVar(&o.certDir, "certs", "", "login: the simulator's certificate export")
	fs.StringVar(&o.directory, "directory", "ACME", "login: the users' directory")
	fs.Parse(os.Args[2:])

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	var (
		r   bench.Result
		err error
	)
	switch mode {
	case "ws":
		r, err = runWS(ctx, o)
	case "rate":
		r, err = runRate(ctx, o)
	case "burst":
		r, err = runBurst(ctx, o)
	case "login":
		r, err = runLogin(ctx, o)
	case "users":
		r, err = runUsers(ctx, o)
	case "idle":
		r, err = runIdle(ctx, o)
	default:
		err = fmt.Errorf("unknown mode %q (want ws, rate, burst, login, users or idle)", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	emit(r)
}

// emit prints r as one JSON line.
func emit(r bench.Result) {
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

// headerFlags collects repeated -header flags.
type headerFlags []string

func (h *headerFlags) String() string { return strings.Join(*h, ", ") }

func (h *headerFlags) Set(v string) error {
	if name, _, ok := strings.Cut(v, ":"); !ok || strings.TrimSpace(name) == "" {
		return errors.New("want 'Name: value'")
	}
	*h = append(*h, v)
	return nil
}

// header returns the -header flags and, with -user-header, the user.
func (o options) header(user string) http.Header {
	h := http.Header{}
	for _, kv := range o.headers {
		k, v, _ := strings.Cut(kv, ":")
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if o.userHeader != "" && user != "" {
		h.Set(o.userHeader, user)
	}
	return h
}

func (o options) user(i int) string { return fmt.Sprintf("%s%d", o.userPrefix, i) }

// errorCount counts failures and keeps the first one.
type errorCount struct {
	n     int64
	first string
}

func (e *errorCount) add(err error) {
	if e.n == 0 {
		e.first = err.Error()
	}
	e.n++
}

func (e *errorCount) merge(o errorCount) {
	if e.n == 0 {
		e.first = o.first
	}
	e.n += o.n
}
