package antientropy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/transport"
)

// newGuardedNode is newNode with an apply that refuses, as the server's
// clock guard does, every key named future*.
func newGuardedNode(tb testing.TB, net *transport.MemNetwork, id string, topo Topology) *node {
	tb.Helper()
	h := &hook{}
	n := &node{id: id, store: openStore(tb, h)}
	cfg := Config{NodeID: id, CallTimeout: 2 * time.Second, Logger: testLogger(tb)}
	apply := func(key []byte, rec record.Record) (bool, error) {
		if strings.HasPrefix(string(key), "future") {
			return false, fmt.Errorf("%w: 1h ahead", clock.ErrClockSkew)
		}
		res, err := n.store.Apply(key, rec)
		return res.Applied, err
	}
	n.tr = net.Listen(id, func(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
		return n.svc.Serve(ctx, from, method, payload)
	})
	tb.Cleanup(func() { n.tr.Close() })
	var err error
	n.svc, err = New(cfg, n.store, apply, n.tr, topo)
	if err != nil {
		tb.Fatal(err)
	}
	h.set(n.svc.OnApply)
	return n
}

// A record the receiving node's clock guard refuses is skipped, pulled or
// pushed: the rest of the range is still repaired, and the sync does not
// fail (it used to fail the whole range, on every round, for as long as the
// record stayed in the receiver's future).
func TestSyncSkipsRecordsRefusedForClockSkew(t *testing.T) {
	net := transport.NewMemNetwork(1)
	topo := staticTopo{r: ring.New([]ring.Node{{ID: "a"}, {ID: "b"}}, 1, 2)}
	a := newGuardedNode(t, net, "a", topo)
	b := newGuardedNode(t, net, "b", topo)
	a.start(t)
	b.start(t)
	mustApply(t, b.store, "future-b", value(1, "x"))
	mustApply(t, a.store, "future-a", value(1, "x"))
	for i := range 20 {
		mustApply(t, b.store, fmt.Sprintf("k%d", i), value(int64(i), "b"))
		mustApply(t, a.store, fmt.Sprintf("j%d", i), value(int64(i), "a"))
	}
	var pulled, pushed int
	for _, rg := range topo.Ranges() {
		res, err := a.svc.SyncRange(t.Context(), "b", rg.Start, rg.End)
		if err != nil {
			t.Fatalf("sync failed on a refused record: %v", err)
		}
		pulled += res.Pulled
		pushed += res.Pushed
	}
	if pulled != 20 || pushed != 20 {
		t.Fatalf("pulled %d pushed %d, want 20 and 20", pulled, pushed)
	}
	for i := range 20 {
		if _, found, _ := a.store.Get([]byte(fmt.Sprintf("k%d", i))); !found {
			t.Fatalf("a lacks k%d", i)
		}
		if _, found, _ := b.store.Get([]byte(fmt.Sprintf("j%d", i))); !found {
			t.Fatalf("b lacks j%d", i)
		}
	}
	if _, found, _ := a.store.Get([]byte("future-b")); found {
		t.Fatal("a stored the record its guard refused")
	}
}
