// Headless Chromium runs the demo's single-page app (sensegate-demo --spa,
// issue 18): the page signs in at the development identity provider
// itself with oidc-client-ts (authorization code flow with PKCE, in the
// page), trades its access token for sensegate's login cookie at
// POST /.sensegate/session, lists the user's apps with enigma.js over the
// Engine websocket that cookie authenticates, and signs out with
// DELETE /.sensegate/session and the provider's own sign-out.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const WebSocket = require('ws');
const { startDemo, launchBrowser } = require('./harness');

const artifacts = path.join(__dirname, 'artifacts');
const USER = 'ACME\\alice';
const CHALLENGE = 'Bearer realm="sensegate"';
let demo;
let browser;
let app;

before(async () => {
  demo = await startDemo(['--spa']);
  // The app is on sensegate's origin (server.public_url), the identity
  // provider on another.
  app = `${demo.publicBase}/spa/`;
  browser = await launchBrowser();
  fs.mkdirSync(artifacts, { recursive: true });
});
after(async () => {
  await browser?.close();
  await demo?.stop();
});

// liveSessions returns the simulator's live Qlik sessions of USER.
async function liveSessions() {
  // No session at all is null.
  const sessions = (await demo.sim('GET', '/sessions')) ?? [];
  return sessions.filter((s) => `${s.user.userDirectory}\\${s.user.userId}` === USER).map((s) => s.sessionId);
}

// pageSocket opens the Engine websocket from the page and reports whether
// it opened (a browser does not tell a page why a handshake failed).
function pageSocket(page) {
  return page.evaluate(() => new Promise((resolve) => {
    const ws = new WebSocket(`ws://${location.host}/app/engineData`);
    ws.onopen = () => { ws.close(); resolve('opened'); };
    ws.onerror = () => resolve('refused');
    setTimeout(() => resolve('timeout'), 10_000);
  }));
}

// handshake opens the Engine websocket from Node with cookie, as the
// app's origin, and resolves with the handshake's status.
function handshake(cookie) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${demo.publicBase.replace(/^http/, 'ws')}/app/engineData`, {
      headers: { Cookie: cookie, Origin: demo.publicBase },
    });
    ws.on('open', () => { ws.close(); resolve(101); });
    ws.on('unexpected-response', (req, res) => { res.resume(); req.destroy(); resolve(res.statusCode); });
    ws.on('error', (e) => resolve(`error: ${e.message}`));
  });
}

// loginCookie returns sensegate's login cookie among context's cookies.
async function loginCookie(context) {
  return (await context.cookies()).find((c) => c.name === 'sensegate_session');
}

test('before the token exchange, the page\'s requests to Qlik get 401 with the bearer challenge', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(app);
  await page.waitForSelector('#user[data-state=signed-out]');
  const answers = await page.evaluate(async () => {
    const key = 'abcdefghijklmnop';
    const out = {};
    for (const p of [`/qrs/app/full?xrfkey=${key}`, '/app/engineData', '/.sensegate/me']) {
      const r = await fetch(p, { headers: { 'X-Qlik-Xrfkey': key } });
      out[p.split('?')[0]] = `${r.status} ${r.headers.get('WWW-Authenticate')}`;
    }
    return out;
  });
  assert.deepEqual(answers, {
    '/qrs/app/full': `401 ${CHALLENGE}`,
    '/app/engineData': `401 ${CHALLENGE}`,
    '/.sensegate/me': `401 ${CHALLENGE}`,
  });
  assert.equal(await pageSocket(page), 'refused');
  await context.close();
});

test('the app signs in at the identity provider, trades its token for sensegate\'s HttpOnly cookie, lists the user\'s apps over enigma.js, and its sign-out ends the Qlik session', async () => {
  assert.ok(demo.idp?.startsWith('http://127.0.0.1:'), `no identity provider in the demo output:\n${demo.output()}`);
  const context = await browser.newContext({ viewport: { width: 1100, height: 480 } });
  const page = await context.newPage();
  await page.goto(app);
  await page.waitForSelector('#user[data-state=signed-out]');

  // The page sends the browser to the provider: the code flow with PKCE,
  // as the app's public client, back to the app.
  const [authorize] = await Promise.all([
    page.waitForRequest((r) => r.url().startsWith(`${demo.idp}/authorize?`)),
    page.waitForURL((u) => u.href.startsWith(`${demo.idp}/login?`)),
    page.click('#signin'),
  ]);
  const q = new URL(authorize.url()).searchParams;
  assert.deepEqual(
    ['response_type', 'client_id', 'redirect_uri', 'code_challenge_method'].map((k) => q.get(k)),
    ['code', 'sensegate-spa', app, 'S256'],
  );
  assert.ok(q.get('code_challenge'), 'no PKCE challenge');
  await page.fill('#username', 'alice');
  await page.fill('#password', 'demo');
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(app)),
    page.click('button[type=submit]'),
  ]);
  await page.waitForSelector('#apps[data-state=ready]', { timeout: 15_000 });
  assert.equal(await page.textContent('#user'), 'Signed in as ACME\\alice');
  const apps = await page.$$eval('#apps li', (lis) => lis.map((li) => li.textContent));
  assert.deepEqual(apps, ['Sales Dashboard', 'Company Handbook', 'Alice Sandbox']);
  assert.equal(page.url(), app, 'the code and state stay in the address bar');
  assert.ok((await liveSessions()).length >= 1, 'no Qlik session of alice at the simulator');

  // No Qlik cookie and no sensegate secret is readable by the page, and
  // the browser holds no Qlik cookie at all, not even an HttpOnly one.
  const pageCookies = await page.evaluate(() => document.cookie);
  assert.ok(!/qlik|sensegate/i.test(pageCookies), `document.cookie = ${pageCookies}`);
  const cookies = await context.cookies();
  assert.ok(!cookies.some((c) => /qlik/i.test(c.name)), JSON.stringify(cookies.map((c) => c.name)));
  const login = await loginCookie(context);
  assert.ok(login, `no sensegate login cookie: ${JSON.stringify(cookies.map((c) => c.name))}`);
  assert.equal(login.httpOnly, true);
  assert.equal(login.domain, 'localhost');
  assert.equal(login.sameSite, 'Lax');
  // That cookie is what authenticates the websocket.
  assert.equal(await handshake(`${login.name}=${login.value}`), 101);

  await page.screenshot({ path: path.join(artifacts, 'demo-spa.png') });

  // A renewed token (the refresh token's, as oidc-client-ts renews before
  // expiry) is traded again: a new login replaces the old one.
  await page.evaluate(async () => {
    /* global userManager, lastExchange */
    await userManager.signinSilent();
    await lastExchange;
  });
  const renewed = await loginCookie(context);
  assert.notEqual(renewed.value, login.value);
  assert.equal(await handshake(`${login.name}=${login.value}`), 401, 'the replaced login still opens the Engine socket');
  assert.equal(await page.evaluate(async () => (await fetch('/.sensegate/me')).status), 200);

  // Sign-out: DELETE /.sensegate/session, then the provider's end_session,
  // which sends the browser back to the app.
  await Promise.all([
    page.waitForRequest((r) => r.url().startsWith(`${demo.idp}/end_session?`)),
    page.click('#signout'),
  ]);
  await page.waitForSelector('#user[data-state=signed-out]');
  assert.deepEqual(await liveSessions(), [], 'alice\'s Qlik sessions outlive the sign-out');
  assert.equal(await loginCookie(context), undefined, 'the login cookie outlives the sign-out');
  assert.equal(await handshake(`${renewed.name}=${renewed.value}`), 401, 'the signed-out login still opens the Engine socket');
  assert.equal(await pageSocket(page), 'refused');

  // The provider's session ended too: signing in again shows its form.
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(`${demo.idp}/login?`)),
    page.click('#signin'),
  ]);
  await page.waitForSelector('#username');
  await context.close();
});
