package server

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/rebalance"
	"github.com/ringkv/ringkv/internal/storage"
)

// TestTokenScheme checks that a fresh data directory is marked with the
// current token scheme and opens again, and that one an older build wrote
// (lifecycle state but no mark) or one with another mark is refused.
func TestTokenScheme(t *testing.T) {
	open := func(t *testing.T) *Server {
		t.Helper()
		st, err := storage.Open(storage.Options{Dir: "n1", InMemory: true, ExpiryInterval: -1, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return &Server{store: st, log: slog.New(slog.DiscardHandler)}
	}
	t.Run("fresh", func(t *testing.T) {
		s := open(t)
		if err := s.checkTokenScheme(); err != nil {
			t.Fatalf("fresh store: %v", err)
		}
		// The node writes its lifecycle state next; a restart still opens.
		if err := s.store.Keyspace(rebalance.PrefixMeta).Set(rebalance.NodeStateKey, []byte{1}); err != nil {
			t.Fatal(err)
		}
		if err := s.checkTokenScheme(); err != nil {
			t.Fatalf("restart of a marked store: %v", err)
		}
	})
	t.Run("older build", func(t *testing.T) {
		s := open(t)
		if err := s.store.Keyspace(rebalance.PrefixMeta).Set(rebalance.NodeStateKey, []byte{1}); err != nil {
			t.Fatal(err)
		}
		if err := s.checkTokenScheme(); !errors.Is(err, errOldTokens) {
			t.Fatalf("old store: got %v, want %v", err, errOldTokens)
		}
	})
	t.Run("other scheme", func(t *testing.T) {
		s := open(t)
		if err := s.store.Keyspace(rebalance.PrefixMeta).Set(tokenSchemeKey, []byte("xxhash64")); err != nil {
			t.Fatal(err)
		}
		if err := s.checkTokenScheme(); err == nil || !strings.Contains(err.Error(), "fresh --data-dir") {
			t.Fatalf("other scheme: got %v", err)
		}
	})
}
