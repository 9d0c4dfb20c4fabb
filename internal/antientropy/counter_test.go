package antientropy

import (
	"fmt"
	"maps"
	"testing"

	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/transport"
)

// counterAt returns a counter record at version (ms, node) whose entries
// are node=count pairs.
func counterAt(ms int64, node string, counts map[string]uint64) record.Record {
	var c record.Counter
	for _, n := range []string{"a", "b", "c"} {
		if p, ok := counts[n]; ok {
			c.Entries = append(c.Entries, record.CounterEntry{Node: n, P: p})
		}
	}
	r := record.Record{Version: ver(ms, node)}
	r.SetCounter(&c)
	return r
}

// Two replicas holding states of one counter that share a version but not
// their increments (what two merges can leave) hash apart, and a sync
// leaves both with the merge: each side's increments are kept.
func TestSyncMergesCounters(t *testing.T) {
	net := transport.NewMemNetwork(1)
	topo := staticTopo{r: ring.New([]ring.Node{{ID: "a"}, {ID: "b"}}, 1, 2)}
	a := newNode(t, net, "a", topo, nil)
	b := newNode(t, net, "b", topo, nil)
	a.start(t)
	b.start(t)
	for i := range 50 {
		k := fmt.Sprintf("c%d", i)
		// Same version, different states.
		mustApply(t, a.store, k, counterAt(100, "a", map[string]uint64{"a": 5, "b": 1}))
		mustApply(t, b.store, k, counterAt(100, "a", map[string]uint64{"a": 5, "c": 2}))
	}
	// Older version on a, but with increments b lacks.
	mustApply(t, a.store, "older", counterAt(100, "a", map[string]uint64{"a": 3}))
	mustApply(t, b.store, "older", counterAt(200, "b", map[string]uint64{"b": 4}))
	checkTree(t, a.svc.Tree(), naiveBuckets(t, a.store))

	for _, rg := range topo.Ranges() {
		if _, err := a.svc.SyncRange(t.Context(), "b", rg.Start, rg.End); err != nil {
			t.Fatal(err)
		}
	}
	ca, cb := contents(t, a.store, 0, 0), contents(t, b.store, 0, 0)
	if !maps.Equal(ca, cb) {
		t.Fatalf("stores differ after sync:\n%v\n%v", ca, cb)
	}
	for i := range 50 {
		k := fmt.Sprintf("c%d", i)
		if v, ok := cb[k]; !ok || v != fmt.Sprintf("%s t=false %q", ver(100, "a"), "8") {
			t.Fatalf("%s after sync: %s, want 8", k, v)
		}
	}
	if v := cb["older"]; v != fmt.Sprintf("%s t=false %q", ver(200, "b"), "7") {
		t.Fatalf("older after sync: %s, want 7", v)
	}
	for _, rg := range topo.Ranges() {
		res, err := a.svc.SyncRange(t.Context(), "b", rg.Start, rg.End)
		if err != nil || res.Mismatch {
			t.Fatalf("second sync: %+v %v", res, err)
		}
	}
}
