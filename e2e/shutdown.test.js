// Graceful shutdown as a container runtime does it: SIGTERM with relayed
// Engine sockets open. Clients get close 1001 within the grace period and
// the process exits 0.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startDemo } = require('./harness');

test('SIGTERM closes open Engine sockets with 1001 and exits 0', async () => {
  const demo = await startDemo();
  const cookie = await demo.login('ACME\\alice');
  const sockets = await Promise.all([1, 2, 3].map(async () => {
    const ws = new WebSocket(`${demo.wsBase}/app/engineData`, { headers: { Cookie: cookie } });
    const closed = new Promise((resolve) => ws.on('close', (code) => resolve({ code, at: Date.now() })));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    // One round trip so the socket is fully relayed.
    const answered = new Promise((resolve) => ws.on('message', (m) => { if (JSON.parse(m).id === 1) resolve(); }));
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'EngineVersion', handle: -1, params: [] }));
    await answered;
    return { ws, closed };
  }));
  const start = Date.now();
  const code = await demo.stop();
  const closes = await Promise.all(sockets.map((s) => s.closed));
  for (const c of closes) {
    assert.equal(c.code, 1001);
    assert.ok(c.at - start < 15_000, 'closed within the grace period');
  }
  assert.equal(code, 0);
});
