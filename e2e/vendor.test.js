// The demo mashup vendors enigma.js so the demo runs with Go alone; its
// files must be exactly those of the version pinned here.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const vendor = path.join(__dirname, '..', 'examples', 'mashup', 'vendor');
const pkg = path.dirname(require.resolve('enigma.js/package.json'));

test('examples/mashup/vendor holds the pinned enigma.js files unmodified', () => {
  for (const [ours, theirs] of [
    ['enigma.min.js', 'enigma.min.js'],
    ['enigma-schema-12.2027.0.json', 'schemas/12.2027.0.json'],
    ['enigma.js-LICENSE', 'LICENSE'],
  ]) {
    assert.ok(fs.readFileSync(path.join(vendor, ours)).equals(fs.readFileSync(path.join(pkg, theirs))), `${ours} differs from enigma.js/${theirs}`);
  }
});
