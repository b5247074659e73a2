package gateway

import (
	"crypto/tls"
	"fmt"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/ticket"
	"go.uber.org/zap"
)

// QPSNode is one Qlik node's URLs, the QPS client sensegate talks to it
// with, and how that client logs users in (qlik.login).
type QPSNode struct {
	URLs   config.NodeURLs
	Client *ticket.Client
	Mode   ticket.Mode
}

// newQPSClients builds the QPS client of every node of q, logging to log
// with the node's proxy host.
func newQPSClients(q config.QlikConfig, log *zap.Logger) ([]QPSNode, error) {
	cert, err := ticket.LoadClientCert(q.QPS.ClientCert, q.QPS.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("qlik.qps.client_cert/client_key: %w", err)
	}
	mode, err := ticket.ParseMode(string(q.Login))
	if err != nil {
		return nil, fmt.Errorf("qlik.login: %w", err)
	}
	var out []QPSNode
	for _, n := range q.NodeURLs() {
		tc, err := ticket.New(ticketConfig(q, n, cert, mode), log.With(zap.String("node", n.Proxy.Host)))
		if err != nil {
			return nil, fmt.Errorf("qlik: %w", err)
		}
		out = append(out, QPSNode{URLs: n, Client: tc, Mode: mode})
	}
	return out, nil
}

// ticketConfig is the QPS client configuration of node n. Values pass
// from the configuration untranslated: qlik.qps.retries means what
// ticket.Config.Retries means.
func ticketConfig(q config.QlikConfig, n config.NodeURLs, cert tls.Certificate, mode ticket.Mode) ticket.Config {
	return ticket.Config{
		ProxyURL: n.Proxy, QPSURL: n.QPS, Prefix: q.Prefix, SessionCookie: q.SessionCookie,
		RedeemPath: q.RedeemPath, Mode: mode, RootCAs: q.RootCAs(), ClientCert: cert,
		Timeout: q.QPS.Timeout, Retries: q.QPS.Retries, MaxConcurrent: q.QPS.MaxConcurrent, Origin: q.WebsocketOrigin(),
	}
}
