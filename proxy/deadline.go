package proxy

import "time"

// Deadlines are moved lazily: a connection's read or write deadline is
// kept while moving it later would gain no more than 1/deadlineSlack of
// the time an operation is given, so an operation still gets at least
// 15/16 of its time, and a busy connection does not update its runtime
// timer (or, over HTTP/2, message its connection's goroutine) at every
// read, write or frame. The stall limits (stallWriter, stallReader), the
// relayed websockets' connections (idleConn) and the pumps' deadlines
// (lazyDeadline) all follow this one rule.
const deadlineSlack = 16

// keepDeadline reports whether a deadline that a move would push later by
// moved may stay where it is, for an operation given wait.
func keepDeadline(moved, wait time.Duration) bool { return moved <= wait/deadlineSlack }
