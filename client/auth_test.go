package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/server"
	"github.com/ringkv/ringkv/internal/testutil"
)

// TestClientAuthenticates runs the client against a node with --password: it
// needs the password for the topology (HTTP) and for its connections (RESP).
func TestClientAuthenticates(t *testing.T) {
	cfg := config.Default()
	cfg.NodeID, cfg.InMemory, cfg.DataDir, cfg.Replicas = "a1", true, "", 1
	cfg.ClientAddr, cfg.HTTPAddr, cfg.PeerAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	gossip, err := freeGossipAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg.GossipAddr, cfg.Password = gossip, "s3cret"
	s, err := server.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	seeds := []string{s.Addrs().HTTP}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := New(ctx, Config{Seeds: seeds, Logger: testLogger(t)}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("no password: New returned %v, want the node's 401", err)
	}
	cl := newTestClient(t, seeds, func(c *Config) { c.Password = "s3cret" })
	testutil.Eventually(t, 10*time.Second, func() error { return cl.Set(t.Context(), "k", []byte("v")) })
	got, err := cl.Get(t.Context(), "k")
	if err != nil || string(got) != "v" {
		t.Fatalf("Get: %q, %v", got, err)
	}
}
