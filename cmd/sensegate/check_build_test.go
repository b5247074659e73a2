package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/tooling/sensegatetest"
)

// check --connect builds sensegate as serve would (gateway.New), so what
// serve would fail on beyond QPS fails the check too, naming its key: here
// a Redis store nobody answers at, with QPS itself fine.
func TestCheckConnectBuildsTheGateway(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there any more
	f := sensegatetest.WriteConfig(t, sim, `store:
  type: redis
  encryption_keys: ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
  redis:
    addr: "`+dead+`"
`)
	err = run(context.Background(), io.Discard, "check", "--connect", "--config", f)
	if err == nil || !strings.Contains(err.Error(), "store.redis.addr") {
		t.Fatalf("check --connect with Redis down = %v, want an error naming store.redis.addr", err)
	}
}
