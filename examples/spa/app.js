// A single-page app that signs its user in itself and reaches Qlik through
// sensegate (issue 18). oidc-client-ts runs the authorization code flow
// with PKCE in the page; the access token it gets is traded for
// sensegate's login cookie at POST /.sensegate/session, because a browser
// cannot put an Authorization header on a websocket handshake. From then
// on enigma.js (and fetch) authenticate with that HttpOnly cookie: the
// page holds no Qlik cookie, no ticket and no readable sensegate cookie.
'use strict';

const $ = (id) => document.getElementById(id);

// The page's own URL: where the provider sends the browser back after
// sign-in and sign-out (registered at the provider as both).
const here = new URL('./', location.href).href;

let userManager; // oidc.UserManager, once config.json is read
// lastExchange is the exchange of the latest renewed token.
let lastExchange = Promise.resolve();

// exchange trades user's access token for sensegate's login cookie
// (204 and Set-Cookie; the token is verified as on any request).
async function exchange(user) {
  const r = await fetch('/.sensegate/session', {
    method: 'POST',
    headers: { Authorization: `Bearer ${user.access_token}` },
  });
  if (r.status !== 204) {
    throw new Error(`sensegate refused the token (${r.status}): ${r.headers.get('WWW-Authenticate') || await r.text()}`);
  }
}

function fail(el, err) {
  el.dataset.state = 'error';
  const li = document.createElement('li');
  li.className = 'error';
  li.textContent = String(err.message || err);
  el.replaceChildren(li);
}

function showSignedOut() {
  const el = $('user');
  el.textContent = 'Not signed in';
  el.dataset.state = 'signed-out';
  $('signin').hidden = false;
  $('signout').hidden = true;
}

async function showUser() {
  const r = await fetch('/.sensegate/me');
  if (!r.ok) throw new Error(`/.sensegate/me answered ${r.status}`);
  const me = await r.json();
  const el = $('user');
  el.textContent = `Signed in as ${me.userDirectory}\\${me.userId}`;
  el.dataset.state = 'ready';
  $('signin').hidden = true;
  $('signout').hidden = false;
}

// The Engine API through enigma.js, exactly as a classic mashup uses it:
// the websocket carries sensegate's login cookie, and sensegate adds the
// Qlik session.
const schemaPromise = fetch('vendor/enigma-schema-12.2027.0.json').then((r) => r.json());

async function showApps() {
  const list = $('apps');
  list.dataset.state = 'loading';
  try {
    const session = enigma.create({
      schema: await schemaPromise,
      url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/app/engineData`,
    });
    const global = await session.open();
    try {
      const docs = await global.getDocList();
      list.replaceChildren(...docs.map((doc) => {
        const li = document.createElement('li');
        li.textContent = doc.qTitle;
        return li;
      }));
      list.dataset.state = 'ready';
    } finally {
      await session.close();
    }
  } catch (e) { fail(list, e); }
}

// signOut ends sensegate's login (and with it the user's Qlik sessions and
// websockets, on every replica), then the provider's session, which sends
// the browser back here.
async function signOut() {
  $('signout').disabled = true;
  try {
    await fetch('/.sensegate/session', { method: 'DELETE' });
  } finally {
    await userManager.signoutRedirect();
  }
}

async function main() {
  const config = await (await fetch('config.json', { cache: 'no-store' })).json();
  userManager = new oidc.UserManager({
    authority: config.authority,
    client_id: config.clientId,
    scope: config.scope,
    redirect_uri: here,
    post_logout_redirect_uri: here,
    response_type: 'code',
    // Renews the token before it expires (with the refresh token that
    // offline_access brings); each renewed token is traded again below.
    automaticSilentRenew: true,
  });
  $('signin').onclick = () => userManager.signinRedirect();
  $('signout').onclick = signOut;

  // Back from the provider with a code: oidc-client-ts checks the state
  // and redeems the code with the PKCE verifier.
  const q = new URLSearchParams(location.search);
  if (q.has('code') || q.has('error')) {
    try {
      await userManager.signinRedirectCallback();
    } finally {
      history.replaceState(null, '', location.pathname);
    }
  }
  const user = await userManager.getUser();
  if (!user || user.expired) {
    showSignedOut();
    return;
  }
  await exchange(user);
  userManager.events.addUserLoaded((renewed) => {
    lastExchange = exchange(renewed);
    lastExchange.catch((e) => fail($('apps'), e));
  });
  await showUser();
  await showApps();
}

main().catch((e) => {
  const el = $('user');
  el.textContent = String(e.message || e);
  el.className = 'error';
  el.dataset.state = 'error';
  $('signin').hidden = false;
});
