// The mashup talks to Qlik exactly as a classic mashup does (enigma.js over
// the Engine websocket, QRS over HTTPS with an Xrfkey pair) but on its own
// origin, through sensegate, without tickets or Qlik cookies.
'use strict';

const $ = (id) => document.getElementById(id);

function xrfkey() {
  const abc = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let k = '';
  for (const b of crypto.getRandomValues(new Uint8Array(16))) k += abc[b % abc.length];
  return k;
}

function fail(el, err) {
  el.dataset.state = 'error';
  el.innerHTML = '';
  const p = document.createElement(el.tagName === 'TABLE' ? 'caption' : 'li');
  p.className = 'error';
  p.textContent = String(err);
  el.appendChild(p);
}

async function showUser() {
  const r = await fetch('/.sensegate/me');
  const el = $('user');
  if (!r.ok) { el.textContent = 'Not signed in'; el.dataset.state = 'error'; return; }
  const me = await r.json();
  el.textContent = `Signed in as ${me.userDirectory}\\${me.userId}`;
  el.dataset.state = 'ready';
}

async function showTasks() {
  const key = xrfkey();
  const table = $('tasks');
  try {
    const r = await fetch(`/qrs/reloadtask/full?xrfkey=${key}`, { headers: { 'X-Qlik-Xrfkey': key } });
    if (!r.ok) throw new Error(`QRS answered ${r.status}`);
    const body = table.tBodies[0];
    for (const t of await r.json()) {
      const tr = body.insertRow();
      for (const v of [t.name, t.app ? t.app.name : '', t.enabled ? 'yes' : 'no']) tr.insertCell().textContent = v;
    }
    table.dataset.state = 'ready';
  } catch (e) { fail(table, e); }
}

// The Engine API through enigma.js, Qlik's own client, exactly as a classic
// mashup uses it, minus the ticket: sensegate adds the Qlik session.
const schemaPromise = fetch('vendor/enigma-schema-12.2027.0.json').then((r) => r.json());

async function openEngine(path) {
  const session = enigma.create({
    schema: await schemaPromise,
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`,
  });
  return { session, global: await session.open() };
}

async function openApp(doc) {
  const out = $('layout');
  let session;
  try {
    let global;
    ({ session, global } = await openEngine(`/app/${doc.qDocId}`));
    const app = await global.openDoc(doc.qDocId);
    const layout = await app.getAppLayout();
    out.textContent = `Opened "${layout.qTitle}", last reloaded ${layout.qLastReloadTime}.`;
  } catch (e) { out.textContent = `Could not open ${doc.qTitle}: ${e.message}`; out.className = 'error'; }
  if (session) await session.close();
}

async function showApps() {
  const list = $('apps');
  let session;
  try {
    let global;
    ({ session, global } = await openEngine('/app/engineData'));
    const docs = await global.getDocList();
    list.innerHTML = '';
    for (const doc of docs) {
      const li = document.createElement('li');
      li.textContent = doc.qTitle;
      const b = document.createElement('button');
      b.textContent = 'Open';
      b.onclick = () => openApp(doc);
      li.appendChild(b);
      list.appendChild(li);
    }
    list.dataset.state = 'ready';
  } catch (e) { fail(list, e); }
  if (session) await session.close();
}

showUser();
showApps();
showTasks();
