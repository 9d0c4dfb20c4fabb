package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
)

// TestPeerPortTakenFailsStart: a peer port another process holds fails Start
// with the cause, and the cleanup after it closes what Start had opened
// without touching the peer endpoint that never was (a nil *TCP in the
// transport interface once crashed it).
func TestPeerPortTakenFailsStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := config.Default()
	cfg.NodeID, cfg.InMemory, cfg.DataDir = "n1", true, ""
	cfg.ClientAddr, cfg.HTTPAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.PeerAddr = ln.Addr().String()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start()
	if err == nil || !strings.Contains(err.Error(), "peer listener") {
		t.Fatalf("Start on a taken peer port = %v, want the peer listener's error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after a failed Start: %v", err)
	}
}
