// The mashup talks to Qlik exactly as a classic mashup does (Engine JSON-RPC
// over a websocket, QRS over HTTPS with an Xrfkey pair) but on its own
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

// A minimal Engine JSON-RPC client: one request at a time is enough here.
function engine(path) {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`);
  let id = 0;
  const pending = new Map();
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.id !== undefined && pending.has(m.id)) {
      const { resolve, reject } = pending.get(m.id);
      pending.delete(m.id);
      if (m.error) reject(new Error(`${m.error.message} (${m.error.code})`)); else resolve(m.result);
    }
  };
  const opened = new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('websocket failed')); });
  ws.onclose = (ev) => { for (const { reject } of pending.values()) reject(new Error(`websocket closed (${ev.code})`)); pending.clear(); };
  return {
    async call(method, handle, params = []) {
      await opened;
      id += 1;
      const p = new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, handle, params }));
      return p;
    },
    close() { ws.close(); },
  };
}

async function openApp(doc) {
  const out = $('layout');
  const session = engine(`/app/${doc.qDocId}`);
  try {
    const opened = await session.call('OpenDoc', -1, [doc.qDocId]);
    const layout = await session.call('GetAppLayout', opened.qReturn.qHandle);
    out.textContent = `Opened "${layout.qLayout.qTitle}", last reloaded ${layout.qLayout.qLastReloadTime}.`;
  } catch (e) { out.textContent = `Could not open ${doc.qTitle}: ${e.message}`; out.className = 'error'; }
  session.close();
}

async function showApps() {
  const list = $('apps');
  const session = engine('/app/engineData');
  try {
    const { qDocList } = await session.call('GetDocList', -1);
    list.innerHTML = '';
    for (const doc of qDocList) {
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
  session.close();
}

showUser();
showApps();
showTasks();
