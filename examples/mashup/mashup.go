// Package mashup is the sample Qlik mashup served by the demo
// (cmd/sensegate-demo): a page that lists the signed-in user's apps with
// enigma.js over the Engine websocket and their reload tasks over QRS,
// through sensegate on one origin, with no ticket or session-cookie code.
// Any static web server can serve the same files behind a sensegate route.
package mashup

import "embed"

// Files holds index.html, mashup.js, mashup.css and the vendored enigma.js.
//
//go:embed index.html mashup.js mashup.css vendor/enigma.min.js vendor/enigma-schema-12.2027.0.json
var Files embed.FS
