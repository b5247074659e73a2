// Starts the demo, `sensegate-demo` (simulator + sensegate + sample mashup), for a test
// file and signs users in through its development login (or, with
// `--oidc`, tells where its development identity provider is).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// startDemo runs the demo binary named by $SENSEGATE_DEMO_BIN and resolves when it
// prints its address. The returned object's stop() ends it. The ports are
// picked free and then handed to the demo, so another process (or the
// demo's own listeners on port 0) may take one in between: a start that
// fails for that is tried again, at most three times.
async function startDemo(extraArgs = []) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDemoOnce(extraArgs);
    } catch (e) {
      if (attempt >= 3 || !/address already in use/.test(e.message)) throw e;
    }
  }
}

async function startDemoOnce(extraArgs) {
  const bin = process.env.SENSEGATE_DEMO_BIN;
  if (!bin) throw new Error('SENSEGATE_DEMO_BIN is not set: run the suite with `make e2e` (or set it to a built sensegate-demo binary, go build ./cmd/sensegate-demo)');
  const port = await freePort();
  const adminPort = await freePort();
  const metricsPort = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sensegate-e2e-'));
  const proc = spawn(bin, ['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--sim-admin-listen', `127.0.0.1:${adminPort}`, '--admin-listen', `127.0.0.1:${metricsPort}`, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stderr.on('data', (d) => { output += d; });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sensegate demo did not start within 30 s:\n${output}`)), 30_000);
    proc.stdout.on('data', (d) => {
      output += d;
      if (output.includes('sensegate demo: open')) { clearTimeout(timer); resolve(); }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`sensegate demo exited with ${code}:\n${output}`)); });
  });
  const base = `http://127.0.0.1:${port}`;
  // With --oidc the demo prints its identity provider's issuer.
  const idp = /Identity provider \(devidp\): (\S+)/.exec(output)?.[1];
  return {
    base,
    // publicBase is server.public_url: the origin of the OIDC callback,
    // where sign-ins through the identity provider must start.
    publicBase: `http://localhost:${port}`,
    wsBase: `ws://127.0.0.1:${port}`,
    admin: `http://127.0.0.1:${adminPort}`,
    // metrics is sensegate's admin listener (/metrics, /healthz, /readyz).
    metrics: `http://127.0.0.1:${metricsPort}`,
    idp,
    output: () => output,
    // login signs a user in and returns the Cookie header value.
    async login(user) {
      const r = await fetch(`${base}/.sensegate/login`, {
        method: 'POST',
        body: new URLSearchParams({ user, rd: '/' }),
        redirect: 'manual',
      });
      if (r.status !== 303) throw new Error(`login ${user}: status ${r.status}`);
      return r.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    },
    // sim calls the simulator's admin API (GET /users, /events?since=N,
    // POST /expire-all, /expire-user?user=…; README "The QSEoW
    // simulator") and resolves with its JSON answer.
    async sim(method, path) {
      const r = await fetch(`${this.admin}${path}`, { method });
      if (r.status !== 200) throw new Error(`simulator ${method} ${path}: status ${r.status}: ${await r.text()}`);
      return r.json();
    },
    // stop sends SIGTERM, as a container runtime does, and resolves with
    // the exit code (or the signal's name if it was killed).
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal)));
      proc.kill('SIGTERM');
      const code = await exited;
      fs.rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}

// launchBrowser starts Debian's headless Chromium ($CHROMIUM to use
// another) with the flags this machine needs: no sandbox as root, and no
// background networking, whose connections the closed network refuses.
function launchBrowser() {
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

module.exports = { startDemo, launchBrowser };
