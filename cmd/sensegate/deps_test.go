package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// notInProduct are import path prefixes that must not be linked into the
// sensegate binary: the development and test tools, the examples, the
// load harness, and what only the development OpenID provider
// (tooling/devidp, zitadel/oidc's op package) pulls in.
var notInProduct = []struct{ prefix, what string }{
	{"github.com/sensegate/sensegate/tooling/", "development and test tooling"},
	{"github.com/sensegate/sensegate/examples/", "an example"},
	{"github.com/sensegate/sensegate/bench", "the load harness"},
	{"github.com/zitadel/", "the development OpenID provider's library"},
	{"github.com/go-chi/", "a dependency of the development OpenID provider"},
	{"go.opentelemetry.io/", "a dependency of the development OpenID provider"},
	{"github.com/rs/cors", "a dependency of the development OpenID provider"},
	{"github.com/muhlemmer/", "a dependency of the development OpenID provider"},
	{"github.com/gorilla/securecookie", "a dependency of the development OpenID provider"},
	{"github.com/go-logr/", "a dependency of the development OpenID provider"},
	{"github.com/bmatcuk/doublestar", "a dependency of the development OpenID provider"},
}

// The product binary is the product (issue 17): `go list -deps` of
// cmd/sensegate names none of notInProduct (Tailscale's tstest/deptest).
// The demo and the simulator are commands of their own.
func TestProductDependencies(t *testing.T) {
	out, err := goCommand(t, "list", "-deps", ".").Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, msg)
	}
	deps := strings.Fields(string(out))
	// The list is the binary's: it has the packages serve runs on.
	for _, want := range []string{"github.com/sensegate/sensegate/server", "github.com/sensegate/sensegate/gateway", "github.com/sensegate/sensegate/proxy"} {
		if !slices.Contains(deps, want) {
			t.Fatalf("go list -deps lacks %s: not the binary's dependencies?\n%s", want, out)
		}
	}
	for _, d := range deps {
		for _, f := range notInProduct {
			if strings.HasPrefix(d, f.prefix) {
				t.Errorf("sensegate links %s, %s: move what needs it out of the product packages", d, f.what)
			}
		}
	}
}

// The linker drops the methods nothing calls, unless a reachable function
// calls methods by a name known only at run time: then it keeps every
// exported method of every type it keeps. A template execution is such a
// function (text/template calls methods by name), and with one in the
// binary all of go-redis's commands, and the rest, were linked: 24 MB
// instead of 16, most of it resident in every process. The test builds
// the binary with the linker's dependency dump and looks for a template
// execution and for a go-redis command sensegate never sends.
func TestLinkerDropsUncalledMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("links the binary")
	}
	cmd := goCommand(t, "build", "-o", os.DevNull, "-ldflags=-dumpdep", ".")
	var dump bytes.Buffer
	cmd.Stderr = &dump
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build -ldflags=-dumpdep: %v\n%.2000s", err, dump.String())
	}
	reached := 0
	sc := bufio.NewScanner(&dump)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		from, to, ok := strings.Cut(sc.Text(), " -> ")
		if !ok {
			continue
		}
		reached++
		switch {
		case to == "text/template.(*Template).execute":
			t.Errorf("%s executes a template: the linker then keeps every exported method (write the output without text/template or html/template)", from)
		case strings.Contains(to, "go-redis") && strings.HasSuffix(to, ").GeoRadius"):
			t.Errorf("go-redis's GeoRadius is linked (%s -> %s): the linker keeps methods nobody calls", from, to)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if reached < 1000 {
		t.Fatalf("the linker's dependency dump has %d edges: not the format this test reads?\n%.2000s", reached, dump.String())
	}
}

// goCommand is the go command with args, run in this package's directory;
// the test is skipped without a go toolchain in PATH.
func goCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go toolchain in PATH: cannot run go %s", args[0])
	}
	return exec.Command(goTool, args...)
}
