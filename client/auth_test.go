package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/testcluster"
	"github.com/ringkv/ringkv/internal/testutil"
)

// TestClientAuthenticates runs the client against a node with --password: it
// needs the password for the topology (HTTP) and for its connections (RESP).
func TestClientAuthenticates(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{
		Nodes: 1, IDPrefix: "a", Logger: testLogger(t),
		Configure: func(cfg *config.Config) { cfg.Password = "s3cret" },
	})
	seeds := c.HTTPAddrs()

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
