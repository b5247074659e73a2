// Package ticket is sensegate's client of the Qlik Proxy Service (QPS): it
// requests tickets (or creates sessions with a caller-chosen id) through the
// QPS API on port 4243 over mutual TLS, redeems tickets on the Qlik proxy
// side for the virtual proxy's session cookie, fetches a session's
// websocket CSRF token there, and ends single sessions or logs users out.
// It knows nothing of browsers: callers hand it an identity.User and get
// back the Qlik session cookie to inject upstream.
//
// Every failure is an *Error. Its Kind is one of the Err* sentinels, which
// errors.Is recognises, and HTTPStatus suggests the status a proxy should
// answer with. Errors and logs never contain tickets, cookie values, CSRF
// tokens or keys.
package ticket
