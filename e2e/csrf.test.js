// Qlik Sense (November 2024 and later) requires a CSRF token on Engine
// websockets. enigma.js through sensegate works unchanged: sensegate fetches
// and adds the token. Without sensegate's token handling the same client
// is refused, which proves the test can fail. Below, the same client
// across a Qlik restart and an idle timeout, with no HTTP request between
// the socket that died and the new one.
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
  await assert.rejects(authenticatedUser(demo, 'ACME\\bob'), (err) => /403/.test(String(err.message ?? err)));
});

// A mashup that talks only enigma.js across the ways Qlik forgets a
// session (issue 15): a session opens an app; Qlik forgets the session;
// the page opens a NEW enigma.js session on the same sensegate login, as
// a mashup reconnects, with no HTTP request of its own in between. It must
// work as the same user, on exactly one new Qlik ticket.
//
// Rows: the simulator's websocket CSRF mode on (sensegate's
// qlik.websocket_csrf auto) and, for comparison, off; its dead_socket
// variant (protocol notes §4b) at its default, must-authenticate, and
// close (the upgrade dropped before any greeting); and three ways the
// session ends:
// - restart: Qlik forgets every session and drops open sockets without a
//   word. sensegate cannot tell, so the next socket carries the dead
//   cookie (and, in CSRF mode, its stale token);
// - idle timeout with the socket open: Qlik sends OnSessionTimedOut, which
//   sensegate sees on the relay;
// - idle timeout with no socket open (the page was closed): nothing tells
//   sensegate, so the next socket carries the dead cookie.
// In CSRF mode a dead cookie's stale token gets 403 on the handshake
// before dead_socket applies [C2][M1], so there the dead_socket rows
// check only that the setting changes nothing; with CSRF off they play
// the variant.
const SALES = '5a8a1b2c-0001-4c1e-9d3f-000000000001';
const USER = 'ACME\\alice';

// withDeadline rejects when p has not settled within ms.
function withDeadline(p, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms); });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

// openApp opens an enigma.js session on SALES with cookie (sensegate's
// login cookie, the client's only credential) and opens the doc.
async function openApp(demo, cookie) {
  let socket;
  const session = enigma.create({
    schema,
    url: `${demo.wsBase}/app/${SALES}`,
    createSocket: (url) => {
      socket = new WebSocket(url, { headers: { Cookie: cookie } });
      return socket;
    },
  });
  const timedOut = new Promise((resolve) => session.on('notification:OnSessionTimedOut', resolve));
  const global = await session.open();
  const doc = await global.openDoc(SALES);
  const closed = new Promise((resolve) => socket.once('close', (code) => resolve(code)));
  return { session, global, doc, closed, timedOut };
}

// liveSessions returns the simulator's live sessions of USER.
async function liveSessions(demo) {
  const sessions = await demo.sim('GET', '/sessions');
  return sessions.filter((s) => `${s.user.userDirectory}\\${s.user.userId}` === USER).map((s) => s.sessionId);
}

const expiries = {
  'a Qlik restart': { path: '/expire-all', socketOpen: true, deadCookieSent: true },
  'an idle timeout with the socket open': { path: `/expire-user?user=${encodeURIComponent(USER)}`, socketOpen: true, deadCookieSent: false },
  'an idle timeout with no socket open': { path: `/expire-user?user=${encodeURIComponent(USER)}`, socketOpen: false, deadCookieSent: true },
};

for (const csrf of [true, false]) {
  for (const deadSocket of ['must-authenticate', 'close']) {
    for (const [expiry, how] of Object.entries(expiries)) {
      const name = `websocket CSRF ${csrf ? 'on' : 'off'}, dead_socket ${deadSocket}: after ${expiry}, a new enigma.js session works as the same user on one new ticket, with no HTTP request in between`;
      test(name, { timeout: 30_000 }, async () => {
        const demo = await startDemo(['--sim-dead-socket', deadSocket, ...(csrf ? ['--websocket-csrf'] : [])]);
        demos.push(demo);
        const cookie = await demo.login(USER);

        const first = await openApp(demo, cookie);
        assert.equal(await first.global.getAuthenticatedUser(), 'UserDirectory=ACME; UserId=alice');
        const [oldSession] = await liveSessions(demo);
        assert.ok(oldSession, 'the first socket ran on a Qlik session');
        if (!how.socketOpen) await first.session.close();
        const users = await demo.sim('GET', '/users');
        const ticketsBefore = users[USER].ticketsIssued;
        const totalBefore = Object.values(users).reduce((n, c) => n + c.ticketsIssued, 0);
        const events = await demo.sim('GET', '/events');
        const mark = events[events.length - 1].seq;

        await demo.sim('POST', how.path);
        if (how.socketOpen) {
          // Qlik closes the open socket, and sensegate the client's.
          await withDeadline(first.closed, 10_000, 'the open socket closing');
          if (expiry.includes('idle')) {
            assert.equal((await withDeadline(first.timedOut, 10_000, 'OnSessionTimedOut')).severity, 'fatal');
          }
        }

        // The mashup reconnects: a new enigma.js session, nothing else.
        const second = await openApp(demo, cookie);
        try {
          assert.equal(await second.global.getAuthenticatedUser(), 'UserDirectory=ACME; UserId=alice');
          assert.equal((await second.doc.getAppLayout()).qTitle, 'Sales Dashboard');
        } finally {
          await second.session.close();
        }

        // At Qlik: one new ticket, for alice only; the new socket ran as
        // alice on a new session, the only one she has.
        const after = await demo.sim('GET', '/users');
        assert.equal(after[USER].ticketsIssued, ticketsBefore + 1, 'tickets issued for alice');
        assert.equal(Object.values(after).reduce((n, c) => n + c.ticketsIssued, 0), totalBefore + 1, 'tickets issued in all');
        const live = await liveSessions(demo);
        assert.equal(live.length, 1, 'alice\'s live Qlik sessions');
        assert.notEqual(live[0], oldSession);
        const since = await demo.sim('GET', `/events?since=${mark}`);
        for (const e of since) {
          if (e.user) assert.equal(e.user, USER, `event ${e.seq} (${e.kind} ${e.method} ${e.path}) ran as ${e.user}`);
        }
        const opened = since.filter((e) => e.kind === 'ws' && e.method === 'OpenDoc');
        assert.deepEqual(opened.map((e) => [e.user, e.sessionId]), [[USER, live[0]]], 'OpenDoc on the new socket');

        // The cell exercised what it names: where nothing told sensegate
        // of the end, Qlik met the dead cookie the way this row plays it.
        if (how.deadCookieSent && csrf) {
          assert.ok(since.some((e) => e.kind === 'http' && e.path === `/app/${SALES}` && e.status === 403 && !e.user),
            'the stale CSRF token was refused on the handshake');
        } else if (how.deadCookieSent) {
          assert.ok(since.some((e) => e.variant === `dead-socket=${deadSocket}`), `the simulator played dead-socket=${deadSocket}`);
        }
      });
    }
  }
}
