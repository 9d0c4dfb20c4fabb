package antientropy

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/transport"
)

func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// hook forwards storage's OnApply to whatever is installed, so a store can be
// opened before the tree or service that watches it.
type hook struct {
	fn atomic.Pointer[func(uint64, []byte, record.Record, record.Record)]
}

func (h *hook) onApply(t uint64, k []byte, o, n record.Record) {
	if f := h.fn.Load(); f != nil {
		(*f)(t, k, o, n)
	}
}

func (h *hook) set(f func(uint64, []byte, record.Record, record.Record)) { h.fn.Store(&f) }

func openStore(tb testing.TB, h *hook) *storage.Store {
	tb.Helper()
	s, err := storage.Open(storage.Options{InMemory: true, ExpiryInterval: -1, OnApply: h.onApply, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// base is a recent instant, so tombstones in tests are far from GC.
var base = time.Now().Add(-time.Minute).UnixMilli()

func ver(ms int64, node string) record.Version {
	return record.Version{TS: clock.MakeTimestamp(base+ms, 0), Node: node}
}

func value(ms int64, v string) record.Record {
	return record.Record{Value: []byte(v), Version: ver(ms, "n1")}
}

func tomb(ms int64) record.Record {
	return record.Record{Tombstone: true, Version: ver(ms, "n1")}
}

func mustApply(tb testing.TB, s *storage.Store, key string, rec record.Record) {
	tb.Helper()
	if _, err := s.Apply([]byte(key), rec); err != nil {
		tb.Fatal(err)
	}
}

// naiveBuckets hashes a store's content from scratch, the slow obvious way.
func naiveBuckets(tb testing.TB, s *storage.Store) map[int]uint64 {
	tb.Helper()
	out := map[int]uint64{}
	if err := s.Scan(0, func(token uint64, key []byte, rec *record.Record) error {
		out[BucketOf(token)] ^= hashOf(key, rec)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

func checkTree(tb testing.TB, tr *Tree, want map[int]uint64) {
	tb.Helper()
	for b := range NumBuckets {
		if got := tr.Bucket(b); got != want[b] {
			tb.Fatalf("bucket %d = %x, want %x", b, got, want[b])
		}
	}
}

// staticTopo is a fixed ring whose nodes' peer addresses are their ids.
type staticTopo struct {
	r    *ring.Ring
	down map[string]bool
}

func (t staticTopo) Ranges() []ring.Range { return t.r.Ranges() }
func (t staticTopo) Peer(id string) (string, bool) {
	return id, !t.down[id]
}

// node is one in-process replica: a store, its service, on a MemNetwork.
type node struct {
	id    string
	store *storage.Store
	svc   *Service
	tr    *transport.MemTransport
}

func newNode(tb testing.TB, net *transport.MemNetwork, id string, topo Topology, mod func(*Config)) *node {
	tb.Helper()
	h := &hook{}
	n := &node{id: id, store: openStore(tb, h)}
	cfg := Config{NodeID: id, CallTimeout: 2 * time.Second, Logger: testLogger(tb)}
	if mod != nil {
		mod(&cfg)
	}
	apply := func(key []byte, rec record.Record) (bool, error) {
		res, err := n.store.Apply(key, rec)
		return res.Applied, err
	}
	var err error
	n.tr = net.Listen(id, func(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
		return n.svc.Serve(ctx, from, method, payload)
	})
	tb.Cleanup(func() { n.tr.Close() })
	n.svc, err = New(cfg, n.store, apply, n.tr, topo)
	if err != nil {
		tb.Fatal(err)
	}
	h.set(n.svc.OnApply)
	return n
}

// start starts the service and waits for its rebuild.
func (n *node) start(tb testing.TB) {
	tb.Helper()
	if err := n.svc.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.svc.Shutdown(ctx)
	})
	testutil.Eventually(tb, 10*time.Second, func() error {
		if !n.svc.Tree().Ready() {
			return fmt.Errorf("%s: tree not ready", n.id)
		}
		return nil
	})
}

// contents returns a store's records by key, as key → version string with a
// tombstone marker and the value.
func contents(tb testing.TB, s *storage.Store, from, to uint64) map[string]string {
	tb.Helper()
	out := map[string]string{}
	if err := s.ScanRange(from, to, func(_ uint64, key []byte, rec *record.Record) error {
		out[string(key)] = fmt.Sprintf("%s t=%v %q", rec.Version, rec.Tombstone, rec.Value)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}
