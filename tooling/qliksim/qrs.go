package qliksim

import (
	"net/http"
	"strings"
)

// Fixed dates keep QRS answers deterministic.
const (
	seedCreated  = "2026-01-15T09:00:00.000Z"
	seedModified = "2026-03-02T14:30:00.000Z"
	seedReloaded = "2026-11-20T06:00:00.000Z"
	seedBuild    = "38.116.2"
)

// serveQRS implements the QRS subset under /{prefix}/qrs/ for an
// authenticated session. Every call needs the Xrfkey pair; results are
// limited to what the session's user may see.
func (s *Sim) serveQRS(w http.ResponseWriter, r *http.Request, pr *proxyRequest) {
	if !checkXrfkey(r) {
		http.Error(w, msgXSRF, http.StatusForbidden)
		return
	}
	segs := strings.Split(strings.Trim(strings.TrimPrefix(pr.path, "/qrs/"), "/"), "/")
	u, attrs := pr.sess.user, pr.sess.attrs
	get := r.Method == http.MethodGet
	post := r.Method == http.MethodPost
	switch {
	case get && len(segs) == 1 && segs[0] == "about":
		writeJSON(w, http.StatusOK, map[string]any{
			"buildVersion": seedBuild, "buildDate": "11/10/2026 00:00:00 AM", "databaseProvider": "Devart.Data.PostgreSql",
			"nodeType": 1, "sharedPersistence": true, "requiresBootstrap": false, "singleNodeOnly": false, "schemaPath": "About",
		})
	case get && segs[0] == "app" && (len(segs) == 1 || len(segs) == 2 && segs[1] == "full"):
		full := len(segs) == 2
		out := []map[string]any{}
		for _, a := range s.visibleApps(u, attrs) {
			out = append(out, s.qrsApp(a, full))
		}
		writeJSON(w, http.StatusOK, out)
	case get && segs[0] == "app" && len(segs) == 2:
		a, ok := s.app(segs[1])
		if !ok || !s.canSee(u, attrs, a) {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, http.StatusOK, s.qrsApp(a, true))
	case get && segs[0] == "reloadtask" && (len(segs) == 1 || len(segs) == 2 && segs[1] == "full"):
		full := len(segs) == 2
		out := []map[string]any{}
		for _, t := range s.tasks {
			if a, ok := s.app(t.AppID); ok && s.canSee(u, attrs, a) {
				out = append(out, s.qrsTask(t, a, full))
			}
		}
		writeJSON(w, http.StatusOK, out)
	case post && len(segs) >= 3 && segs[0] == "task" && segs[2] == "start" && len(segs) <= 4:
		t, ok := s.task(segs[1])
		var a App
		if ok {
			a, ok = s.app(t.AppID)
		}
		// Tasks the user cannot see are reported as missing rather than
		// forbidden, so their existence does not leak.
		if !ok || !s.canSee(u, attrs, a) {
			http.NotFound(w, r)
			return
		}
		switch {
		case len(segs) == 3:
			w.WriteHeader(http.StatusNoContent)
		case segs[3] == "synchronous":
			writeJSON(w, http.StatusCreated, map[string]string{"value": newGUID()})
		default:
			http.NotFound(w, r)
		}
	case get && len(segs) == 2 && segs[0] == "executionsession":
		// The execution session is gone once the task has finished, which
		// in the simulator is at once: 404.
		http.NotFound(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Sim) task(id string) (ReloadTask, bool) {
	for _, t := range s.tasks {
		if strings.EqualFold(t.ID, id) {
			return t, true
		}
	}
	return ReloadTask{}, false
}

func (s *Sim) qrsApp(a App, full bool) map[string]any {
	var stream any
	if a.Stream != "" {
		stream = map[string]any{"id": streamID(a.Stream), "name": a.Stream, "privileges": nil}
	}
	m := map[string]any{
		"id": a.ID, "name": a.Name, "appId": "", "publishTime": seedModified, "published": a.Stream != "",
		"stream": stream, "savedInProductVersion": "12.2027.0", "migrationHash": "", "availabilityStatus": 0, "privileges": nil,
	}
	if full {
		owner := map[string]any{"id": "", "userId": "", "userDirectory": "", "name": ""}
		if d, id, ok := splitUser(a.Owner); ok {
			o := Identity{Directory: d, ID: id}.normalized()
			owner = map[string]any{"id": newStableID(a.Owner), "userId": o.ID, "userDirectory": o.Directory, "name": s.userName(o)}
		}
		m["createdDate"], m["modifiedDate"], m["modifiedByUserName"] = seedCreated, seedModified, "INTERNAL\\sa_repository"
		m["owner"], m["description"], m["fileSize"], m["lastReloadTime"] = owner, "", 1048576, seedReloaded
		m["customProperties"], m["tags"], m["thumbnail"], m["dynamicColor"] = []any{}, []any{}, "", ""
		m["schemaPath"] = "App"
	}
	return m
}

func (s *Sim) qrsTask(t ReloadTask, a App, full bool) map[string]any {
	m := map[string]any{
		"id": t.ID, "name": t.Name, "taskType": 0, "enabled": t.Enabled, "taskSessionTimeout": 1440, "maxRetries": 0,
		"privileges": nil,
		"operational": map[string]any{
			"id": newStableID("op" + t.ID), "nextExecution": "1753-01-01T00:00:00.000Z",
			"lastExecutionResult": map[string]any{"status": 7, "startTime": seedReloaded, "stopTime": seedReloaded, "duration": 4200},
		},
	}
	if full {
		m["app"] = s.qrsApp(a, false)
		m["isManuallyTriggered"], m["isPartialReload"] = false, false
		m["createdDate"], m["modifiedDate"], m["modifiedByUserName"] = seedCreated, seedModified, "INTERNAL\\sa_repository"
		m["customProperties"], m["tags"], m["schemaPath"] = []any{}, []any{}, "ReloadTask"
	}
	return m
}

// streamID and newStableID derive deterministic GUID-shaped ids from names.
func streamID(name string) string { return newStableID("stream:" + name) }

func newStableID(seed string) string {
	var h [16]byte
	for i := 0; i < len(seed); i++ {
		h[i%16] = h[i%16]*31 + seed[i]
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, b := range h {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[b>>4], hex[b&15])
	}
	return string(out)
}
