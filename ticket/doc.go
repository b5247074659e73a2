// Package ticket is sensegate's client of the Qlik Proxy Service (QPS): it
// requests tickets (or creates sessions with a caller-chosen id) through the
// QPS API on port 4243 over mutual TLS, redeems tickets on the Qlik proxy
// side for the virtual proxy's session cookie, fetches a session's
// websocket CSRF token there, and ends single sessions or logs users out.
// It knows nothing of browsers: callers hand it an identity.User and get
// back the Qlik session cookie to inject upstream.
//
// Connections to QPS and to the Qlik proxy are kept alive, redemptions
// included, and a ticket is still never presented twice: a redemption goes
// out in a form net/http does not re-send by itself, and when one gets no
// answer on a reused connection (the server closed it as the request went
// out) Login asks for a new ticket and redeems it on a new connection.
//
// Every failure is an *Error. Its Kind is one of the Err* sentinels, which
// errors.Is recognises; its Temporary field and Permanent method tell a
// caller whether a later call may succeed. Errors and logs never contain
// tickets, cookie values, CSRF tokens or keys.
//
// The files: client.go holds the calls, each saying what it sends, which
// answers it accepts and what a repeat risks; retry.go the engine that
// attempts them and decides on retries, within the cap of limit.go;
// transport.go one attempt on the wire; errors.go what failures mean;
// config.go the Config and its defaults; nodes.go several Qlik nodes.
package ticket
