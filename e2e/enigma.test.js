// enigma.js, Qlik's own Engine API client, through sensegate.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const enigma = require('enigma.js');
const schema = require('enigma.js/schemas/12.2027.0.json');
const { startDemo } = require('./harness');

let demo;
before(async () => { demo = await startDemo(); });
after(async () => { await demo?.stop(); });

// openSession opens an enigma.js session as user through sensegate; the
// only credential is sensegate's own login cookie.
async function openSession(user, path = '/app/engineData', headers = {}) {
  const cookie = await demo.login(user);
  const session = enigma.create({
    schema,
    url: `${demo.wsBase}${path}`,
    createSocket: (url) => new WebSocket(url, { headers: { Cookie: cookie, ...headers } }),
  });
  const global = await session.open();
  return { session, global };
}

const visible = {
  'ACME\\alice': ['Sales Dashboard', 'Company Handbook', 'Alice Sandbox'],
  'ACME\\bob': ['Finance Overview', 'Company Handbook'],
  'ACME\\carol': ['Sales Dashboard', 'Finance Overview', 'Company Handbook'],
  'ACME\\dev': ['Company Handbook'],
};

test('getAuthenticatedUser, getDocList, openDoc and getAppLayout for several users at once', async () => {
  await Promise.all(Object.entries(visible).map(async ([user, apps]) => {
    const { session, global } = await openSession(user);
    try {
      const [dir, id] = user.split('\\');
      assert.equal(await global.getAuthenticatedUser(), `UserDirectory=${dir}; UserId=${id}`);
      const docs = await global.getDocList();
      assert.deepEqual(docs.map((d) => d.qTitle), apps, `apps of ${user}`);
      const doc = await global.openDoc(docs[0].qDocId);
      const layout = await doc.getAppLayout();
      assert.equal(layout.qTitle, apps[0]);
    } finally {
      await session.close();
    }
  }));
});

test('openDoc of an app the user may not see is refused by Qlik', async () => {
  const { session, global } = await openSession('ACME\\dev');
  try {
    await assert.rejects(global.openDoc('5a8a1b2c-0001-4c1e-9d3f-000000000001'), (err) => err.code === 5);
  } finally {
    await session.close();
  }
});

test('a page on a foreign origin cannot open the Engine socket', async () => {
  await assert.rejects(openSession('ACME\\alice', '/app/engineData', { Origin: 'https://evil.example' }));
});

test('a session timeout mid-session reaches enigma.js as Qlik sends it', async () => {
  const { session, global } = await openSession('ACME\\carol');
  const timedOut = new Promise((resolve) => session.on('notification:OnSessionTimedOut', resolve));
  assert.equal(await global.getAuthenticatedUser(), 'UserDirectory=ACME; UserId=carol');
  const r = await fetch(`${demo.admin}/expire-user?user=${encodeURIComponent('ACME\\carol')}`, { method: 'POST' });
  assert.equal(r.status, 200);
  const params = await timedOut;
  assert.equal(params.severity, 'fatal');
  // Qlik closes the socket after the notification (with 1000, which
  // enigma.js treats as a normal close: no 'closed' event); calls fail.
  await assert.rejects(global.engineVersion(), (err) => err.code === enigma.errorCodes?.NOT_CONNECTED || /closed|not connected/i.test(err.message));

  // A new session opens normally afterwards, on a fresh Qlik session.
  const again = await openSession('ACME\\carol');
  assert.equal(await again.global.getAuthenticatedUser(), 'UserDirectory=ACME; UserId=carol');
  await again.session.close();
});
