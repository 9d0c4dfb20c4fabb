package server

import (
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/membership"
)

// A difference between member views starts a full state exchange only once
// it has outlasted gossip's spread, and then at most once per viewSyncEvery.
func TestViewsDifferSyncsOnlyWhenDifferencePersists(t *testing.T) {
	s := newTestServer(t, nil)
	var err error
	// Not started: its Sync reaches no one, which is all this test needs.
	if s.member, err = membership.New(membership.Config{NodeID: "n1", BindAddr: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	r := &rebalancer{s: s}
	synced := func() time.Time {
		for r.syncing.Load() {
			time.Sleep(time.Millisecond)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.mu.lastSync
	}
	r.viewsDiffer(1)
	if !synced().IsZero() {
		t.Fatal("synced on a difference just seen")
	}
	r.mu.Lock()
	r.mu.differSince = time.Now().Add(-viewSyncAfter)
	r.mu.Unlock()
	r.viewsDiffer(1)
	first := synced()
	if first.IsZero() {
		t.Fatalf("no sync after the difference lasted %v", viewSyncAfter)
	}
	r.viewsDiffer(1)
	if got := synced(); !got.Equal(first) {
		t.Fatalf("synced again after %v, want to wait %v", got.Sub(first), viewSyncEvery)
	}
	// Our own view changed: the new difference starts its own wait.
	r.mu.Lock()
	r.mu.lastSync = time.Time{}
	r.mu.Unlock()
	r.viewsDiffer(2)
	if !synced().IsZero() {
		t.Fatal("synced on a difference in a view just taken")
	}
	if got := r.viewSyncs.Load(); got != 1 {
		t.Errorf("counted %d syncs, want 1", got)
	}
}
