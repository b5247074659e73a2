// Headless Chromium (Debian's, driven by playwright-core) loads the demo
// mashup through sensegate, the way a user would.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { startDemo } = require('./harness');

const artifacts = path.join(__dirname, 'artifacts');
let demo;
let browser;

before(async () => {
  demo = await startDemo();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
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
