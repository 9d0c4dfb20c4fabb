package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/pki"
	"github.com/ringkv/ringkv/internal/server"
)

// TestTLS: a client with TLSConfig reads the topology over HTTPS and runs
// commands over TLS against a node that requires client certificates; one
// without TLSConfig cannot start.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	srvFiles, cliFiles, err := pki.WriteBundle(dir, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.NodeID, cfg.InMemory, cfg.DataDir, cfg.Replicas = "tls1", true, "", 1
	cfg.ClientAddr, cfg.HTTPAddr, cfg.PeerAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA, cfg.TLSRequireClientCert = srvFiles.Cert, srvFiles.Key, srvFiles.CA, true
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
		s.Shutdown(ctx)
	})
	tc, err := pki.ClientConfig(cliFiles)
	if err != nil {
		t.Fatal(err)
	}
	seeds := []string{s.Addrs().HTTP}
	c := newTestClient(t, seeds, func(c *Config) { c.TLSConfig = tc })
	ctx := t.Context()
	if err := c.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "k")
	if err != nil || string(got) != "v" {
		t.Fatalf("Get over TLS: %q, %v", got, err)
	}

	if plain, err := New(ctx, Config{Seeds: seeds, Logger: testLogger(t)}); err == nil {
		plain.Close()
		t.Fatal("a client without TLS read the topology of a TLS node")
	} else if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("client without TLS: %v", err)
	}
}
