// Exports through sensegate: enigma.js asks the Engine for a file
// (GenericObject.exportData), which answers a /tempcontent/… URL relative
// to the virtual proxy; the client downloads it from the same origin with
// its only credential, sensegate's login cookie. sensegate must forward
// /tempcontent/ to Qlik on the user's own Qlik session: the simulator
// serves a file only to the session that made it.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const enigma = require('enigma.js');
const schema = require('enigma.js/schemas/12.2027.0.json');
const { startDemo } = require('./harness');

const SALES = '5a8a1b2c-0001-4c1e-9d3f-000000000001';

let demo;
before(async () => { demo = await startDemo(); });
after(async () => { await demo?.stop(); });

// exportTable opens app as the user of cookie, creates a table session
// object and exports it; it resolves with exportData's answer.
async function exportTable(cookie, app, ...exportArgs) {
  const session = enigma.create({
    schema,
    url: `${demo.wsBase}/app/${app}`,
    createSocket: (url) => new WebSocket(url, { headers: { Cookie: cookie } }),
  });
  try {
    const global = await session.open();
    const doc = await global.openDoc(app);
    const table = await doc.createSessionObject({
      qInfo: { qType: 'table' },
      qHyperCubeDef: { qDimensions: [{ qDef: { qFieldDefs: ['Region'] } }], qMeasures: [{ qDef: { qDef: 'Sum(Amount)' } }] },
    });
    return await table.exportData(...exportArgs);
  } finally {
    await session.close().catch(() => {});
  }
}

// downloads returns the simulator's log of GETs of path: who ran them and
// with which answer.
async function downloads(path) {
  const events = await demo.sim('GET', '/events');
  return events.filter((e) => e.kind === 'http' && e.method === 'GET' && e.path === path)
    .map((e) => ({ user: e.user, status: e.status }));
}

test('exportData\'s qUrl downloads through sensegate as the user who exported, and 404s for another user', async () => {
  const alice = await demo.login('ACME\\alice');
  const { qUrl, qWarnings } = await exportTable(alice, SALES, 'CSV_C', '/qHyperCubeDef', 'Sales by region');
  assert.deepEqual(qWarnings, []);
  // Relative to the virtual proxy, which through sensegate is sensegate's root.
  assert.match(qUrl, /^\/tempcontent\/[0-9a-f-]{36}\/Sales%20by%20region\.csv\?serverNodeId=[0-9a-f-]{36}$/);

  const r = await fetch(`${demo.base}${qUrl}`, { headers: { Cookie: alice } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/csv; charset=utf-8');
  assert.equal(r.headers.get('content-disposition'), 'attachment; filename="Sales by region.csv"');
  assert.equal(await r.text(), [
    'App,User,Region,Amount',
    'Sales Dashboard,ACME\\alice,North,100',
    'Sales Dashboard,ACME\\alice,South,200',
    'Sales Dashboard,ACME\\alice,East,300',
    'Sales Dashboard,ACME\\alice,West,400',
    '',
  ].join('\r\n'));

  // Another user of sensegate, on their own Qlik session, is told there is
  // no such file.
  const bob = await demo.login('ACME\\bob');
  const other = await fetch(`${demo.base}${qUrl}`, { headers: { Cookie: bob } });
  assert.equal(other.status, 404);
  assert.doesNotMatch(await other.text(), /alice/);

  // Qlik saw each download as the user it was made for.
  const path = decodeURIComponent(qUrl.split('?')[0]);
  assert.deepEqual(await downloads(path), [
    { user: 'ACME\\alice', status: 200 },
    { user: 'ACME\\bob', status: 404 },
  ]);
});

test('an OOXML export downloads as a workbook', async () => {
  const carol = await demo.login('ACME\\carol');
  const { qUrl } = await exportTable(carol, SALES, 'OOXML');
  assert.match(qUrl, /^\/tempcontent\/[0-9a-f-]{36}\/[0-9a-f-]{36}\.xlsx\?/);
  const r = await fetch(`${demo.base}${qUrl}`, { headers: { Cookie: carol } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
  const body = Buffer.from(await r.arrayBuffer());
  assert.equal(body.subarray(0, 4).toString('latin1'), 'PK\x03\x04', 'a zip package');
});
