// Headless Chromium (Debian's, driven by playwright-core) loads the demo
// mashup through sensegate, the way a user would.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { startDemo, launchBrowser } = require('./harness');

const artifacts = path.join(__dirname, 'artifacts');
let demo;
let browser;

before(async () => {
  demo = await startDemo();
  browser = await launchBrowser();
  fs.mkdirSync(artifacts, { recursive: true });
});
after(async () => {
  await browser?.close();
  await demo?.stop();
});

test('the mashup shows the signed-in user\'s apps and reload tasks, and no Qlik cookie reaches the browser', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 560 } });
  const page = await context.newPage();
  await page.goto(`${demo.base}/`);
  // Not signed in: the development login page.
  await page.click('button[value="ACME\\\\alice"]');
  await page.waitForSelector('#apps[data-state=ready]', { timeout: 15_000 });
  await page.waitForSelector('#tasks[data-state=ready]', { timeout: 15_000 });
  assert.equal(await page.textContent('#user'), 'Signed in as ACME\\alice');
  const apps = await page.$$eval('#apps li', (lis) => lis.map((li) => li.firstChild.textContent));
  assert.deepEqual(apps, ['Sales Dashboard', 'Company Handbook', 'Alice Sandbox']);
  const tasks = await page.$$eval('#tasks tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
  assert.deepEqual(tasks, ['Reload Sales Dashboard', 'Reload Company Handbook', 'Reload Alice Sandbox']);
  await page.click('#apps li:first-child button');
  await page.waitForFunction(() => document.getElementById('layout').textContent.startsWith('Opened'));
  assert.match(await page.textContent('#layout'), /Opened "Sales Dashboard"/);

  // The browser holds sensegate's login cookie only: no Qlik session
  // cookie, not even an HttpOnly one invisible to document.cookie.
  const names = (await context.cookies()).map((c) => c.name);
  assert.deepEqual(names, ['sensegate_dev_user']);
  assert.ok(!(await page.evaluate(() => document.cookie)).toLowerCase().includes('qlik'));

  await page.screenshot({ path: path.join(artifacts, 'demo-mashup.png') });
  await context.close();
});

test('another user sees other apps', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${demo.base}/`);
  await page.click('button[value="ACME\\\\bob"]');
  await page.waitForSelector('#apps[data-state=ready]', { timeout: 15_000 });
  const apps = await page.$$eval('#apps li', (lis) => lis.map((li) => li.firstChild.textContent));
  assert.deepEqual(apps, ['Finance Overview', 'Company Handbook']);
  await context.close();
});

test('a page on a foreign origin cannot open the Engine socket through sensegate', async () => {
  // The attacker's page, on another origin, with the victim signed in to
  // sensegate in the same browser (cross-site websocket hijacking).
  const evil = http.createServer((req, res) => {
    res.setHeader('Content-Type', 'text/html');
    res.end('<!doctype html><title>evil</title>');
  });
  await new Promise((resolve) => evil.listen(0, '127.0.0.1', resolve));
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${demo.base}/`);
  await page.click('button[value="ACME\\\\alice"]');
  await page.waitForSelector('#apps[data-state=ready]', { timeout: 15_000 });
  await page.goto(`http://127.0.0.1:${evil.address().port}/`);
  const outcome = await page.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => {
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'GetAuthenticatedUser', handle: -1, params: [] }));
    };
    ws.onmessage = (ev) => { if (JSON.parse(ev.data).id === 1) resolve(`answered: ${ev.data}`); };
    ws.onerror = () => resolve('refused');
    setTimeout(() => resolve('timeout'), 10_000);
  }), `${demo.wsBase}/app/engineData`);
  assert.equal(outcome, 'refused');
  await context.close();
  evil.close();
});

test('with --oidc, the mashup sends the browser to the identity provider, whose sign-in brings it back with the user\'s apps', async () => {
  const oidc = await startDemo(['--oidc']);
  try {
    assert.ok(oidc.idp?.startsWith('http://127.0.0.1:'), `no identity provider in the demo output:\n${oidc.output()}`);
    assert.match(oidc.output(), /Users: alice, bob, carol, dev; password "demo"/);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${oidc.publicBase}/`);
    // Not signed in: sensegate sends the browser to the IdP's login form.
    await page.waitForSelector('#username');
    assert.ok(page.url().startsWith(`${oidc.idp}/login?`), `at ${page.url()}, want the IdP's login page`);
    await page.fill('#username', 'alice');
    await page.fill('#password', 'demo');
    await Promise.all([
      page.waitForURL(`${oidc.publicBase}/`),
      page.click('button[type=submit]'),
    ]);
    await page.waitForSelector('#apps[data-state=ready]', { timeout: 15_000 });
    assert.equal(await page.textContent('#user'), 'Signed in as ACME\\alice');
    const apps = await page.$$eval('#apps li', (lis) => lis.map((li) => li.firstChild.textContent));
    assert.deepEqual(apps, ['Sales Dashboard', 'Company Handbook', 'Alice Sandbox']);

    // sensegate's login cookie and the IdP's own (on its host); no Qlik
    // cookie, not even an HttpOnly one.
    const cookies = await context.cookies();
    assert.ok(!cookies.some((c) => c.name.toLowerCase().includes('qlik')), JSON.stringify(cookies.map((c) => c.name)));
    assert.deepEqual(cookies.filter((c) => c.domain === 'localhost').map((c) => c.name), ['sensegate_session']);

    // Sign out ends the IdP's session too: back at its login form.
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${oidc.idp}/login?`)),
      page.click('text=Sign out'),
    ]);
    await page.waitForSelector('#username');
    await context.close();
  } finally {
    await oidc.stop();
  }
});
