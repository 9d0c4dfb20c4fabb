package cli

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/version"
)

func TestVersionCommand(t *testing.T) {
	want := version.Get()
	te := newTestEnv(t)
	if code := te.run(t.Context(), "version"); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	if got := strings.TrimSpace(te.stdout.String()); got != want.String() {
		t.Fatalf("version printed %q, want %q", got, want.String())
	}
	te = newTestEnv(t)
	if code := te.run(t.Context(), "version", "-o", "json"); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	var got version.Info
	if err := json.Unmarshal([]byte(te.stdout.String()), &got); err != nil || got != want {
		t.Fatalf("version -o json = %+v (%v), want %+v", got, err, want)
	}
	te = newTestEnv(t)
	if code := te.run(t.Context(), "version", "-o", "yaml"); code != exitUsage {
		t.Fatalf("version -o yaml: exit %d, want %d", code, exitUsage)
	}
}

func TestReadyCommand(t *testing.T) {
	ready := startRealNode(t)
	te := newTestEnv(t)
	if code := te.run(t.Context(), "ready", "--addr", ready.HTTP); code != exitOK {
		t.Fatalf("ready node: exit %d: %s", code, te.stderr.String())
	}

	// A node of a new cluster whose other member never comes is forming, not
	// ready; the command must say so and why.
	forming := startRealNode(t, func(c *config.Config) {
		c.NodeID = "a"
		c.GossipAddr = freeLoopback(t)
		c.InitialCluster = []string{"a=" + c.GossipAddr, "b=" + freeLoopback(t)}
	})
	te = newTestEnv(t)
	if code := te.run(t.Context(), "ready", "--addr", forming.HTTP); code != exitError {
		t.Fatalf("forming node: exit %d, want %d: %s", code, exitError, te.stderr.String())
	}
	if msg := te.stderr.String(); !strings.Contains(msg, "503") || !strings.Contains(msg, "forming: waiting for b") {
		t.Fatalf("forming node: the reason is missing: %q", msg)
	}
}

// freeLoopback returns a loopback address nothing listens on right now.
func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
