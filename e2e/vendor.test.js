// The demo's mashup and single-page app vendor enigma.js and
// oidc-client-ts so the demo runs with Go alone; their files must be
// exactly those of the versions pinned here.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const examples = path.join(__dirname, '..', 'examples');
// pkgDir is an installed package's directory (jwt-decode exports no
// package.json to require.resolve).
const pkgDir = (name) => path.join(__dirname, 'node_modules', name);
const version = (name) => JSON.parse(fs.readFileSync(path.join(pkgDir(name), 'package.json'), 'utf8')).version;

function assertVendored(vendor, pkg, files) {
  for (const [ours, theirs] of files) {
    assert.ok(fs.readFileSync(path.join(vendor, ours)).equals(fs.readFileSync(path.join(pkgDir(pkg), theirs))), `${ours} differs from ${pkg}/${theirs}`);
  }
}

test('examples/mashup/vendor holds the pinned enigma.js files unmodified', () => {
  assertVendored(path.join(examples, 'mashup', 'vendor'), 'enigma.js', [
    ['enigma.min.js', 'enigma.min.js'],
    ['enigma-schema-12.2027.0.json', 'schemas/12.2027.0.json'],
    ['enigma.js-LICENSE', 'LICENSE'],
  ]);
});

test('examples/spa/vendor holds the pinned oidc-client-ts browser bundle unmodified', () => {
  const vendor = path.join(examples, 'spa', 'vendor');
  assertVendored(vendor, 'oidc-client-ts', [
    ['oidc-client-ts.min.js', 'dist/browser/oidc-client-ts.min.js'],
    ['oidc-client-ts-LICENSE', 'LICENSE'],
  ]);
  // The bundle includes its one dependency, jwt-decode, whose license
  // comes along.
  const deps = JSON.parse(fs.readFileSync(path.join(pkgDir('oidc-client-ts'), 'package.json'), 'utf8')).dependencies;
  assert.deepEqual(Object.keys(deps), ['jwt-decode']);
  assertVendored(vendor, 'jwt-decode', [['jwt-decode-LICENSE', 'LICENSE']]);
  // The README names the versions.
  const readme = fs.readFileSync(path.join(vendor, 'README.md'), 'utf8');
  for (const name of ['oidc-client-ts', 'jwt-decode']) {
    assert.ok(readme.includes(`\`${name}\` ${version(name)}`), `vendor/README.md does not name ${name} ${version(name)}`);
  }
});
