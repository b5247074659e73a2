package proxy

import (
	"context"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
)

// Audit event names, the event field of every audit log entry.
const (
	AuditQlikLogin       = "qlik_login"
	AuditQlikLoginFailed = "qlik_login_failed"
	AuditLogout          = "logout"
	AuditAppOpen         = "app_open"
)

// Audit writes the audit log: one structured entry per Qlik login, failed
// login, logout, and app opened over an Engine websocket, each with
// "audit": true, the event name, the user and the request id. Entries
// never hold cookies, tickets, tokens or passwords. A nil *Audit writes
// nothing. It is safe for concurrent use.
type Audit struct{ log *zap.Logger }

// NewAudit returns an Audit writing to log at Info level (nil: no audit
// log, a nil *Audit).
func NewAudit(log *zap.Logger) *Audit {
	if log == nil {
		return nil
	}
	return &Audit{log: log.With(zap.Bool("audit", true))}
}

// Login records a Qlik login the session broker made for u; it is a
// session.LoginFunc. ctx carries the request that started the login.
func (a *Audit) Login(ctx context.Context, u identity.User, e session.Entry, err error) {
	if a == nil {
		return
	}
	if err != nil {
		a.log.Warn("qlik login failed", zap.String("event", AuditQlikLoginFailed), zap.String("user", u.String()),
			zap.String("request_id", requestID(ctx)), zap.Error(err))
		return
	}
	a.log.Info("qlik login", zap.String("event", AuditQlikLogin), zap.String("user", u.String()),
		zap.String("request_id", requestID(ctx)), zap.Time("qlik_session_created", e.Created))
}

// logout records a logout through sensegate.
func (a *Audit) logout(ctx context.Context, u identity.User, qlikSessions, websockets int, err error) {
	if a == nil {
		return
	}
	fields := []zap.Field{zap.String("event", AuditLogout), zap.String("user", u.String()), zap.String("request_id", requestID(ctx)),
		zap.Int("qlik_sessions_ended", qlikSessions), zap.Int("websockets_closed", websockets)}
	if err != nil {
		fields = append(fields, zap.NamedError("qlik_error", err))
	}
	a.log.Info("logout", fields...)
}

// appOpen records an OpenDoc on p's websocket with its outcome (opened,
// refused with rpcErr, no_answer, sent, unknown: opendoc.go).
func (a *Audit) appOpen(p *wsPair, appID, outcome string, rpcErr *rpcError) {
	fields := []zap.Field{zap.String("event", AuditAppOpen), zap.String("user", p.user.String()),
		zap.String("request_id", p.reqID), zap.String("app_id", appID), zap.String("outcome", outcome),
		zap.Duration("qlik_session_age", time.Since(p.created).Round(time.Second))}
	msg := "app opened"
	switch outcome {
	case openRefused:
		msg = "app open refused"
		if rpcErr != nil {
			fields = append(fields, zap.Int("qlik_error_code", rpcErr.Code), zap.String("qlik_error", rpcErr.Message))
		}
	case openNoAnswer:
		msg = "app open not answered"
	case openSent, openUnknown:
		msg = "app open sent"
	}
	a.log.Info(msg, fields...)
}

// maxAppID bounds the app id an audit entry repeats from a client.
const maxAppID = 128

// isOpenDocMethod reports whether a request's method is OpenDoc, in any
// ASCII case: the Engine's matching is undocumented, and an extra audit
// entry costs less than a missed one.
func isOpenDocMethod(m []byte) bool { return asciiEqualFold(m, "OpenDoc") }

// parseOpenDoc returns the app id of an Engine JSON-RPC OpenDoc request
// (params ["appId", …] or {"qDocName": "appId", …}) and whether msg is
// one: a top-level object whose method is OpenDoc. msg may be cut short:
// what was read before the cut counts. Only the method and the document
// name are read, never the other parameters (qPassword).
func parseOpenDoc(msg []byte) (appID string, ok bool) {
	s := rpcScanner{match: isOpenDocMethod, doc: true}
	s.Write(msg)
	if s.matched == 0 {
		return "", false
	}
	return s.docName(), true
}
