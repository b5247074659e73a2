// Qlik Sense (November 2024 and later) requires a CSRF token on Engine
// websockets. enigma.js through sensegate works unchanged: sensegate fetches
// and adds the token. Without sensegate's token handling the same client
// is refused, which proves the test can fail.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const enigma = require('enigma.js');
const schema = require('enigma.js/schemas/12.2027.0.json');
const { startDemo } = require('./harness');

const demos = [];
after(async () => { await Promise.all(demos.map((d) => d.stop())); });

async function authenticatedUser(demo, user) {
  const cookie = await demo.login(user);
  const session = enigma.create({
    schema,
    url: `${demo.wsBase}/app/engineData`,
    createSocket: (url) => new WebSocket(url, { headers: { Cookie: cookie } }),
  });
  try {
    const global = await session.open();
    return await global.getAuthenticatedUser();
  } finally {
    await session.close().catch(() => {});
  }
}

test('with the simulator in CSRF mode, enigma.js through sensegate works unchanged', async () => {
  const demo = await startDemo(['--websocket-csrf']);
  demos.push(demo);
  assert.equal(await authenticatedUser(demo, 'ACME\\bob'), 'UserDirectory=ACME; UserId=bob');
});

test('without sensegate adding the token, Qlik refuses the socket', async () => {
  const demo = await startDemo(['--websocket-csrf', '--qlik-websocket-csrf', 'off']);
  demos.push(demo);
  await assert.rejects(authenticatedUser(demo, 'ACME\\bob'));
});
