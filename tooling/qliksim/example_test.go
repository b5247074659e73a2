package qliksim

import (
	"testing"
	"time"
)

// The example configuration the README points to must stay loadable.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("testdata/qliksim.example.yaml")
	if err != nil {
		t.Fatalf("LoadConfig(example) = %v", err)
	}
	if len(cfg.VirtualProxies) != 2 || cfg.VirtualProxies[1].SameSiteHTTPS != "None" || cfg.VirtualProxies[1].SessionTimeout != 30*time.Minute {
		t.Errorf("virtual proxies = %+v", cfg.VirtualProxies)
	}
	if vp := cfg.VirtualProxies[1]; vp.UnknownCookie != UnknownCookie500Text || vp.DeadSocket != DeadSocketMustAuthenticate || vp.SessionCap != SessionCapRedeem || vp.DropPings {
		t.Errorf("virtual_proxies[1] variants = %q %q %q %v, want the defaults written out", vp.UnknownCookie, vp.DeadSocket, vp.SessionCap, vp.DropPings)
	}
	if cfg.ProxyIdleTimeout != DefaultProxyIdleTimeout || cfg.RedeemConnection != RedeemKeepAlive {
		t.Errorf("proxy_idle_timeout %s, redeem_connection %q; want the defaults written out", cfg.ProxyIdleTimeout, cfg.RedeemConnection)
	}
	if len(cfg.Users) != 2 || len(cfg.Apps) != 3 || cfg.Apps[0].Owner != `ACME\alice` || len(cfg.ReloadTasks) != 2 {
		t.Errorf("seed = %d users, %d apps (owner %q), %d tasks; want 2, 3 (ACME\\alice), 2", len(cfg.Users), len(cfg.Apps), cfg.Apps[0].Owner, len(cfg.ReloadTasks))
	}
}
