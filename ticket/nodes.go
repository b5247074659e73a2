package ticket

import (
	"context"
	"errors"
	"hash/fnv"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/sensegate/sensegate/identity"
	"go.uber.org/zap"
)

// DefaultNodeCooldown is how long a failed node is left alone before it
// is probed again.
const DefaultNodeCooldown = 10 * time.Second

// Node is one Qlik proxy node: its Client and its id, the host[:port] of
// its proxy URL.
type Node struct {
	ID     string
	Client *Client
}

// Nodes logs users in on several Qlik proxy nodes, which keep their
// sessions in memory each: a user's login goes to a healthy node chosen
// by a hash of the user, and the caller keeps the user on it. A node that
// fails (network error or 5xx, from QPS or from the proxy side) is down
// for a cooldown, then probed with Ping before it takes logins again. It
// is safe for concurrent use.
type Nodes struct {
	nodes []Node
	byID  map[string]int
	h     *health
	log   *zap.Logger
}

// NodesOptions tune Nodes; zero values take the defaults.
type NodesOptions struct {
	// Cooldown is how long a failed node is down (DefaultNodeCooldown).
	Cooldown time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Logger receives node state changes (nil discards them).
	Logger *zap.Logger
}

// NewNodes returns Nodes over nodes, which must not be empty and have
// distinct ids.
func NewNodes(nodes []Node, opts NodesOptions) (*Nodes, error) {
	if len(nodes) == 0 {
		return nil, errors.New("ticket: no Qlik nodes")
	}
	n := &Nodes{nodes: nodes, byID: map[string]int{}, log: opts.Logger}
	if n.log == nil {
		n.log = zap.NewNop()
	}
	for i, nd := range nodes {
		if _, dup := n.byID[nd.ID]; dup {
			return nil, errors.New("ticket: two Qlik nodes named " + nd.ID)
		}
		n.byID[nd.ID] = i
	}
	n.h = newHealth(len(nodes), opts.Cooldown, opts.Now, func(ctx context.Context, i int) error {
		return n.nodes[i].Client.Ping(ctx)
	})
	return n, nil
}

// LoginOn logs u in on a healthy node, the one u's hash picks when it is
// up, and returns the session cookie and the node's id. A node failing
// with ErrUnreachable, ErrTimeout or ErrUnavailable is marked down and the
// next one is tried; when all are down each is tried anyway.
func (n *Nodes) LoginOn(ctx context.Context, u identity.User) (*http.Cookie, string, error) {
	hf := fnv.New32a()
	hf.Write([]byte(u.Key()))
	var errs []error
	for _, i := range n.h.order(ctx, int(hf.Sum32()%uint32(len(n.nodes)))) {
		c, err := n.nodes[i].Client.Login(ctx, u)
		if err == nil {
			return c, n.nodes[i].ID, nil
		}
		errs = append(errs, err)
		if !isNodeFailure(err) || ctx.Err() != nil {
			break
		}
		n.down(i, err)
	}
	return nil, "", errors.Join(errs...)
}

// Login implements session.Loginer with LoginOn.
func (n *Nodes) Login(ctx context.Context, u identity.User) (*http.Cookie, error) {
	c, _, err := n.LoginOn(ctx, u)
	return c, err
}

// Logout ends u's sessions on every node that is up, returning how many
// ended.
func (n *Nodes) Logout(ctx context.Context, u identity.User) (int, error) {
	total := 0
	var errs []error
	for i, nd := range n.nodes {
		if !n.h.up(i) {
			continue
		}
		k, err := nd.Client.Logout(ctx, u)
		total += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// EndSessionOn ends the session id on node (the first node when node is
// unknown); see Client.EndSession.
func (n *Nodes) EndSessionOn(ctx context.Context, node, id string) (bool, error) {
	return n.nodes[n.byID[node]].Client.EndSession(ctx, id)
}

// CSRFTokenOn fetches the websocket CSRF token of a session on node (the
// first node when node is unknown).
func (n *Nodes) CSRFTokenOn(ctx context.Context, node, sessionCookie string) (string, bool, error) {
	return n.nodes[n.byID[node]].Client.CSRFToken(ctx, sessionCookie)
}

// CSRFToken fetches a token from the first node; see CSRFTokenOn.
func (n *Nodes) CSRFToken(ctx context.Context, sessionCookie string) (string, bool, error) {
	return n.nodes[0].Client.CSRFToken(ctx, sessionCookie)
}

// Ping pings every node's QPS: it succeeds when one node answers (logins
// go there), and returns every node's error otherwise.
func (n *Nodes) Ping(ctx context.Context) error {
	var errs []error
	for _, nd := range n.nodes {
		err := nd.Client.Ping(ctx)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// URL returns the proxy-side base URL of node, nil for an unknown node.
func (n *Nodes) URL(node string) *url.URL {
	i, ok := n.byID[node]
	if !ok || n.nodes[i].Client.cfg.ProxyURL == nil {
		return nil
	}
	u := *n.nodes[i].Client.cfg.ProxyURL
	return &u
}

// URLs returns the proxy-side base URL of every node, in order.
func (n *Nodes) URLs() []*url.URL {
	var out []*url.URL
	for _, nd := range n.nodes {
		if u := nd.Client.cfg.ProxyURL; u != nil {
			c := *u
			out = append(out, &c)
		}
	}
	return out
}

// Down marks node down for the cooldown after err, e.g. a proxied request
// that could not reach it.
func (n *Nodes) Down(node string, err error) {
	if i, ok := n.byID[node]; ok {
		n.down(i, err)
	}
}

func (n *Nodes) down(i int, err error) {
	if n.h.markDown(i) {
		n.log.Warn("qlik node down", zap.String("node", n.nodes[i].ID), zap.Error(err))
	}
}

// CloseIdleConnections closes every node client's idle connections.
func (n *Nodes) CloseIdleConnections() {
	for _, nd := range n.nodes {
		nd.Client.CloseIdleConnections()
	}
}

// isNodeFailure reports whether err says the node, not the request, is at
// fault.
func isNodeFailure(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnavailable)
}

// health is the up/down state of n nodes. A node marked down stays down
// for cooldown; after that the first order call probes it, and it is up
// again if the probe succeeds, or down for another cooldown.
type health struct {
	cooldown time.Duration
	now      func() time.Time
	probe    func(ctx context.Context, i int) error

	mu        sync.Mutex
	downUntil []time.Time // zero: up
}

func newHealth(n int, cooldown time.Duration, now func() time.Time, probe func(context.Context, int) error) *health {
	if cooldown <= 0 {
		cooldown = DefaultNodeCooldown
	}
	if now == nil {
		now = time.Now
	}
	return &health{cooldown: cooldown, now: now, probe: probe, downUntil: make([]time.Time, n)}
}

// markDown marks node i down for the cooldown, reporting whether it was up.
func (h *health) markDown(i int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	was := h.downUntil[i].IsZero()
	h.downUntil[i] = h.now().Add(h.cooldown)
	return was
}

// up reports whether node i is up (not marked down, or its cooldown is over).
func (h *health) up(i int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.downUntil[i].IsZero() || !h.now().Before(h.downUntil[i])
}

// order returns the nodes to try, starting at first and going round: the
// up ones, then the down ones as a last resort. Nodes whose cooldown is
// over are probed first; one that fails the probe counts as down.
func (h *health) order(ctx context.Context, first int) []int {
	n := len(h.downUntil)
	var up, down []int
	for k := range n {
		i := (first + k) % n
		h.mu.Lock()
		until := h.downUntil[i]
		h.mu.Unlock()
		switch {
		case until.IsZero():
			up = append(up, i)
		case h.now().Before(until):
			down = append(down, i)
		case h.probe(ctx, i) == nil:
			h.mu.Lock()
			h.downUntil[i] = time.Time{}
			h.mu.Unlock()
			up = append(up, i)
		default:
			h.markDown(i)
			down = append(down, i)
		}
	}
	return append(up, down...)
}
