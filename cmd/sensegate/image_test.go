package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensegate/sensegate/tooling/qliksim"
)

// nonroot is the user and group of gcr.io/distroless/static:nonroot.
const nonroot = 65532

// TestDockerfileUsesBuildScript: the release build flags live in one place,
// scripts/build.sh, which the Dockerfile runs (and `make build`).
func TestDockerfileUsesBuildScript(t *testing.T) {
	for file, want := range map[string]string{
		"../../Dockerfile": "./scripts/build.sh /out/sensegate",
		"../../Makefile":   "./scripts/build.sh bin/sensegate",
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not run %q", file, want)
		}
	}
}

// TestReleaseBinaryAsNonRoot builds sensegate as the Dockerfile does
// (scripts/build.sh) and runs it as the image's non-root user: version,
// check of an example config, serve, and healthcheck against it.
func TestReleaseBinaryAsNonRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the binary as another user")
	}
	dir, err := os.MkdirTemp("", "sensegate-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sensegate")
	build := exec.Command("../../scripts/build.sh", bin)
	build.Env = append(os.Environ(), "VERSION=v9.8.7-test", "COMMIT=abc1234")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, out)
	}
	certs, err := qliksim.WriteCerts(filepath.Join(dir, "qlik"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The export readable by nonroot only, as a mounted secret would be.
	if err := filepath.Walk(filepath.Join(dir, "qlik"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, nonroot, nonroot)
	}); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"HOME=" + dir,
		"SENSEGATE_QLIK_CA=" + certs.Root,
		"SENSEGATE_QLIK_QPS_CLIENT_CERT=" + certs.Client,
		"SENSEGATE_QLIK_QPS_CLIENT_KEY=" + certs.ClientKey,
	}
	run := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nonroot, Gid: nonroot}}
		return cmd
	}
	ctx := context.Background()

	out, err := run(ctx, "version").CombinedOutput()
	if want := "sensegate v9.8.7-test (commit abc1234)\n"; err != nil || string(out) != want {
		t.Errorf("version = %q, %v; want %q", out, err, want)
	}
	example, _ := filepath.Abs("../../deploy/examples/header.yaml")
	if out, err := run(ctx, "check", "--config", example).CombinedOutput(); err != nil {
		t.Errorf("check %s as nonroot: %v\n%s", example, err, out)
	}

	// serve on free ports, then healthcheck it from the config as a
	// container HEALTHCHECK would.
	port := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	listen, adminListen := port(), port()
	env = append(env, "SENSEGATE_SERVER_LISTEN="+listen, "SENSEGATE_ADMIN_LISTEN=:"+strings.Split(adminListen, ":")[1])
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	serve := run(sctx, "serve", "--config", example)
	serve.Cancel = func() error { return serve.Process.Signal(syscall.SIGTERM) }
	var serveOut strings.Builder
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = serve.Wait()
	}()
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := run(ctx, "healthcheck", "--config", example).CombinedOutput()
		if err == nil {
			if !strings.Contains(string(out), "healthy: http://127.0.0.1:") {
				t.Errorf("healthcheck output = %q", out)
			}
			break
		}
		last = fmt.Sprintf("%v: %s", err, out)
		if time.Now().After(deadline) {
			t.Fatalf("healthcheck never passed: %s\nserve:\n%s", last, serveOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// --url to a port nobody listens on: exit status 1.
	err = run(ctx, "healthcheck", "--url", "http://"+port()+"/healthz", "--timeout", "2s").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("healthcheck of a closed port = %v, want exit status 1", err)
	}
}

func TestAdminProbeURL(t *testing.T) {
	for listen, want := range map[string]string{
		":9090":          "http://127.0.0.1:9090/healthz",
		"0.0.0.0:9090":   "http://127.0.0.1:9090/healthz",
		"[::]:9090":      "http://[::1]:9090/healthz",
		"127.0.0.1:9091": "http://127.0.0.1:9091/healthz",
	} {
		if got, err := adminProbeURL(listen, "/healthz"); err != nil || got != want {
			t.Errorf("adminProbeURL(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
	if _, err := adminProbeURL("", "/healthz"); err == nil {
		t.Error(`adminProbeURL("") = nil error`)
	}
}
