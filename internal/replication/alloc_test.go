package replication

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/transport"
)

// fixedTopo is one replica set for every key that allocates nothing, so that
// the allocations counted below are the coordinator's own.
type fixedTopo struct{ reps []Replica }

func (t fixedTopo) Replicas([]byte) []Replica { return t.reps }
func (t fixedTopo) Nodes() []Replica          { return t.reps }
func (t fixedTopo) Pending([]byte) []Replica  { return nil }

// A single node (RF 1) serves a read from the row cache without allocating,
// and a write with only the allocations Pebble's commit and the stored record
// need. The fan-out's goroutines once moved a write's locals to the heap on
// every call, the single-node path included (eight objects per SET).
// maxSingleNodeWriteAllocs: the row cache's copy of the record, and the new
// and previous records handed to storage's OnApply hook through pointers.
const maxSingleNodeWriteAllocs = 3

func TestSingleNodeRequestAllocations(t *testing.T) {
	st, err := storage.Open(storage.Options{Dir: "n1", InMemory: true, ExpiryInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := DefaultConfig()
	cfg.NodeID = "n1"
	cfg.ReadRepairChance = 0
	topo := fixedTopo{reps: []Replica{{ID: "n1", Addr: "n1", Up: true}}}
	co := New(cfg, clock.NewHLC(clock.System{}, 500*time.Millisecond), st, transport.NewMemNetwork(1).Listen("n1", nil), topo, nil)
	ctx := context.Background()
	key, val := []byte("alloc-key"), []byte("a value of some bytes")
	if _, _, err := co.Put(ctx, key, Mutation{Value: val}, One); err != nil {
		t.Fatal(err)
	}

	reads := testing.AllocsPerRun(200, func() {
		if _, found, err := co.Get(ctx, key, One); err != nil || !found {
			t.Fatalf("Get: found %t, %v", found, err)
		}
	})
	if reads != 0 {
		t.Errorf("a cached single-node read allocates %.1f objects, want 0", reads)
	}
	writes := testing.AllocsPerRun(200, func() {
		if _, _, err := co.Put(ctx, key, Mutation{Value: val}, One); err != nil {
			t.Fatalf("Put: %v", err)
		}
	})
	if writes > maxSingleNodeWriteAllocs {
		t.Errorf("a single-node write allocates %.1f objects, want at most %d", writes, maxSingleNodeWriteAllocs)
	}
}
