package cli

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
)

// blockingNode's Start runs until release is closed, as a storage open
// retrying a flush on a full disk never ends.
type blockingNode struct {
	*fakeNode
	release chan struct{}
}

func (n *blockingNode) Start() error {
	<-n.release
	return n.fakeNode.Start()
}

// A signal during a start that does not end stops the process after the
// grace, saying so; one that ends within the grace is shut down as usual.
func TestSignalDuringStart(t *testing.T) {
	old := startGrace
	startGrace = 200 * time.Millisecond
	t.Cleanup(func() { startGrace = old })
	for _, tc := range []struct {
		name     string
		finishes bool
		wantCode int
		wantErr  string
	}{
		{"start never ends", false, 1, "interrupted while starting"},
		{"start ends within the grace", true, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t)
			n := &blockingNode{fakeNode: &fakeNode{}, release: make(chan struct{})}
			te.env.newNode = func(cfg config.Config, _ *slog.Logger) (node, error) {
				n.cfg = cfg
				return n, nil
			}
			defer close(n.release)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan int, 1)
			go func() { done <- te.run(ctx, "server", "--in-memory", "--huge-pages=false") }()
			cancel()
			if tc.finishes {
				n.release <- struct{}{}
			}
			code := <-done
			if code != tc.wantCode || !strings.Contains(te.stderr.String(), tc.wantErr) {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, te.stderr.String())
			}
			n.mu.Lock()
			stopped := n.stopped
			n.mu.Unlock()
			if stopped != tc.finishes {
				t.Fatalf("Shutdown called: %v, want %v", stopped, tc.finishes)
			}
		})
	}
}
