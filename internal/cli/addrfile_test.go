package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/server"
	"github.com/ringkv/ringkv/internal/testutil"
)

// The server writes --addr-file once the node has started, with the node's
// bound addresses, and leaves nothing else in the file's directory.
func TestServerWritesAddrFile(t *testing.T) {
	te := newTestEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "n1.addrs")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- te.run(ctx, "server", "--in-memory", "--huge-pages=false", "--addr-file", path,
			"--client-addr", "127.0.0.1:7001", "--http-addr", "127.0.0.1:7002",
			"--peer-addr", "127.0.0.1:7003", "--gossip-addr", "127.0.0.1:7004")
	}()
	var got server.Addrs
	testutil.Eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &got)
	})
	want := server.Addrs{Client: "127.0.0.1:7001", HTTP: "127.0.0.1:7002", Peer: "127.0.0.1:7003", Gossip: "127.0.0.1:7004"}
	if got != want {
		t.Fatalf("--addr-file holds %+v, want the node's %+v", got, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d files, want the address file alone (no temporary left)", len(entries))
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("--addr-file mode %v, %v; want 0644", info.Mode(), err)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
}

// A file left by an earlier run is gone before the node starts: a node that
// then fails to start leaves no ports behind that nothing listens on.
func TestServerRemovesStaleAddrFile(t *testing.T) {
	te := newTestEnv(t)
	te.startErr = errors.New("address already in use")
	path := filepath.Join(t.TempDir(), "n1.addrs")
	if err := os.WriteFile(path, []byte(`{"client":"127.0.0.1:1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := te.run(t.Context(), "server", "--in-memory", "--huge-pages=false", "--addr-file", path); code != exitError {
		t.Fatalf("exit %d, want %d: %s", code, exitError, te.stderr.String())
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the previous run's --addr-file survived a failed start: %v", err)
	}
}

// A file that cannot be written stops the node: a supervisor waiting for it
// would otherwise wait for ever beside a node it cannot reach.
func TestServerAddrFileUnwritableStopsNode(t *testing.T) {
	te := newTestEnv(t)
	path := filepath.Join(t.TempDir(), "missing-dir", "n1.addrs")
	if code := te.run(t.Context(), "server", "--in-memory", "--huge-pages=false", "--addr-file", path); code != exitError {
		t.Fatalf("exit %d, want %d: %s", code, exitError, te.stderr.String())
	}
	if !strings.Contains(te.stderr.String(), "--addr-file") {
		t.Errorf("stderr does not name --addr-file: %s", te.stderr.String())
	}
	nodes := te.fakeNodes()
	if len(nodes) != 1 || !nodes[0].started || !nodes[0].stopped {
		t.Fatalf("want the one node started and then shut down, got %d nodes", len(nodes))
	}
}
