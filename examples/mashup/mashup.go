// Package mashup is the sample Qlik mashup served by `sensegate demo`: a
// page that lists the signed-in user's apps over the Engine websocket and
// their reload tasks over QRS, through sensegate on one origin, with no
// ticket or session-cookie code. Any static web server can serve the same
// files behind a sensegate route.
package mashup

import "embed"

// Files holds index.html, mashup.js and mashup.css.
//
//go:embed index.html mashup.js mashup.css
var Files embed.FS
