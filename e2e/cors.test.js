// Headless Chromium: a mashup page on another origin (server.allowed_origins)
// calls QRS through sensegate with the user's credentials and its Xrfkey
// header, passing the CORS preflight; a page on an origin not allowed
// cannot read the answer.
//
// sensegate's login cookie is SameSite=Lax, so a browser sends it only to
// requests of the same site: the pages are on http://localhost:OTHER and
// sensegate on http://localhost:PORT, same site and cross origin, as
// portal.example.com and sense.example.com are.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startDemo, launchBrowser } = require('./harness');

let demo;
let browser;
let portal;
let foreign;

function pageServer() {
  const srv = http.createServer((req, res) => {
    res.setHeader('Content-Type', 'text/html');
    res.end('<!doctype html><title>mashup on another origin</title>');
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

before(async () => {
  portal = await pageServer();
  foreign = await pageServer();
  demo = await startDemo(['--allowed-origin', `http://localhost:${portal.address().port}`]);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await demo?.stop();
  portal?.close();
  foreign?.close();
});

// callQRS runs in the page: GET /qrs/app/full on sensegate with the
// user's cookies and an Xrfkey header (which makes the browser send a
// preflight first), and reports what the page could read.
async function callQRS(page, base) {
  return page.evaluate(async (base) => {
    const key = 'abcdefghijklmnop';
    try {
      const r = await fetch(`${base}/qrs/app/full?xrfkey=${key}`, {
        credentials: 'include',
        headers: { 'X-Qlik-Xrfkey': key },
      });
      return { status: r.status, apps: (await r.json()).map((a) => a.name), requestId: r.headers.get('X-Request-Id') };
    } catch (e) {
      return { error: String(e) };
    }
  }, base);
}

test('a mashup on an allowed origin reads the signed-in user\'s apps through sensegate with credentials', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Sign in at sensegate itself (its public origin, localhost).
  await page.goto(`${demo.publicBase}/`);
  await page.click('button[value="ACME\\\\alice"]');
  await page.waitForSelector('#apps[data-state=ready]', { timeout: 15_000 });

  await page.goto(`http://localhost:${portal.address().port}/`);
  const got = await callQRS(page, demo.publicBase);
  assert.equal(got.error, undefined, `the allowed page could not read the answer: ${got.error}`);
  assert.equal(got.status, 200);
  assert.deepEqual(got.apps.sort(), ['Alice Sandbox', 'Company Handbook', 'Sales Dashboard']);
  assert.ok(got.requestId, 'X-Request-Id is not exposed to the page');
  await context.close();
});

test('a page on an origin not allowed cannot read the answer, though its browser holds the user\'s cookie', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${demo.publicBase}/`);
  await page.click('button[value="ACME\\\\alice"]');
  await page.waitForSelector('#apps[data-state=ready]', { timeout: 15_000 });

  await page.goto(`http://localhost:${foreign.address().port}/`);
  const got = await callQRS(page, demo.publicBase);
  assert.match(got.error ?? '', /TypeError/, `the foreign page read ${JSON.stringify(got)}`);
  await context.close();
});
