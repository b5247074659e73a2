package qliksim

import (
	"encoding/json"
	"strings"
)

// Generic objects. The simulator's apps hold no stored objects (sheets,
// charts), so the one way to get a GenericObject handle is the one a
// mashup uses for its own tables: Doc.CreateSessionObject with the
// object's properties, which enigma.js calls as
// doc.createSessionObject({qInfo: {qType: 'table'}, qHyperCubeDef: {…}}).
// Doc.GetObject finds such an object again by its qInfo.qId (enigma.js
// calls it to restore objects after a resume). A session object lives as
// long as the socket; the Engine's own session objects live as long as
// the Engine session, which with TTL 0 ends with its last socket too.

// engineObject is a generic object a socket holds.
type engineObject struct {
	handle int
	// id and typ are qProp.qInfo.qId and qInfo.qType.
	id, typ string
	// props are the properties as the client sent them, decoded; ExportData
	// resolves its qPath in them.
	props map[string]any
}

// objectReturn is the qReturn of a call that hands out a GenericObject
// handle. enigma.js builds its object API from qType, qHandle,
// qGenericId and qGenericType (apiResponseInterceptor) [G5].
type objectReturn struct {
	Type        string `json:"qType"`
	Handle      int    `json:"qHandle"`
	GenericType string `json:"qGenericType"`
	GenericID   string `json:"qGenericId"`
}

func (o *engineObject) qReturn() map[string]objectReturn {
	return map[string]objectReturn{"qReturn": {Type: "GenericObject", Handle: o.handle, GenericType: o.typ, GenericID: o.id}}
}

// createSessionObject implements Doc.CreateSessionObject(qProp). An
// empty qInfo.qId gets a generated one, as the Engine's does. Two
// objects with one id, and a missing qInfo.qType, are refused: what the
// Engine answers then is not documented, refusing is the stricter choice.
func (c *engineConn) createSessionObject(p rpcParams) (any, *rpcError) {
	var raw json.RawMessage
	if err := p.get(0, "qProp", &raw); err != nil {
		return nil, err
	}
	var prop struct {
		Info struct {
			ID   string `json:"qId"`
			Type string `json:"qType"`
		} `json:"qInfo"`
	}
	var props map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &prop) != nil || json.Unmarshal(raw, &props) != nil || props == nil {
		return nil, errInvalidParams("qProp")
	}
	if strings.TrimSpace(prop.Info.Type) == "" {
		return nil, errInvalidParams("qInfo.qType")
	}
	id := prop.Info.ID
	if id == "" {
		id = randomString(6) // the Engine's generated ids look like "hJhpRU"
	}
	if c.objectByID(id) != nil {
		return nil, &rpcError{Code: locerrGenericAlreadyExists, Parameter: id, Message: "Already exists"}
	}
	if c.objects == nil {
		c.objects, c.nextHandle = map[int]*engineObject{}, firstObjHandle
	}
	o := &engineObject{handle: c.nextHandle, id: id, typ: prop.Info.Type, props: props}
	c.nextHandle++
	c.objects[o.handle] = o
	return o.qReturn(), nil
}

// getObject implements Doc.GetObject(qId) for the socket's session
// objects. An unknown id is answered with a null qType and qHandle, not
// an error: enigma.js turns that answer into its "Object not found"
// (apiResponseInterceptor, "the quirks of engine not returning an error
// when an object is missing") [G5].
func (c *engineConn) getObject(p rpcParams) (any, *rpcError) {
	var id string
	if err := p.get(0, "qId", &id); err != nil {
		return nil, err
	}
	if o := c.objectByID(id); o != nil {
		return o.qReturn(), nil
	}
	return map[string]map[string]any{"qReturn": {"qType": nil, "qHandle": nil}}, nil
}

func (c *engineConn) objectByID(id string) *engineObject {
	for _, o := range c.objects {
		if o.id == id {
			return o
		}
	}
	return nil
}

// callObject runs a GenericObject method.
func (c *engineConn) callObject(o *engineObject, method string, p rpcParams) (any, *rpcError) {
	switch method {
	case "ExportData":
		return c.exportData(o, p)
	}
	return nil, errMethodNotFound(method)
}
