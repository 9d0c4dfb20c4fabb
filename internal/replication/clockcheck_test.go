package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/transport"
)

// guardedNode is a node wired as the server wires one: a skewable wall
// clock, the clock guard on its store and in its coordinator, and a clock
// check.
type guardedNode struct {
	id    string
	wall  *clock.Offset
	guard *clock.Guard
	store *storage.Store
	coord *Coordinator
	check *ClockCheck
	// onTime, when set, runs as the node serves a peer's clock reading,
	// before it reads its clock: a test's hook into the middle of a round.
	onTime func()
}

const testMaxSkew = 500 * time.Millisecond

func newGuardedCluster(t *testing.T, n int) []*guardedNode {
	t.Helper()
	net := transport.NewMemNetwork(1)
	topo := &simTopo{}
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		topo.reps = append(topo.reps, Replica{ID: id, Addr: id, Up: true})
	}
	var nodes []*guardedNode
	for i := range n {
		nd := &guardedNode{id: fmt.Sprintf("n%d", i+1), wall: clock.NewOffset(clock.System{}, 0)}
		nd.guard = clock.NewGuard(nd.wall, testMaxSkew)
		st, err := storage.Open(storage.Options{
			Dir: nd.id, InMemory: true, ExpiryInterval: -1, Clock: nd.wall, Logger: slog.New(slog.DiscardHandler),
			Guard: func(w storage.Guarded) error { return nd.guard.Check(w.TS) },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		nd.store = st
		tr := net.Listen(nd.id, func(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
			if method == MethodTime && nd.onTime != nil {
				nd.onTime()
			}
			return nd.coord.Serve(ctx, from, method, payload)
		})
		cfg := DefaultConfig()
		cfg.NodeID = nd.id
		cfg.RequestTimeout = 300 * time.Millisecond
		cfg.ReadRepairChance = 0
		cfg.Guard = nd.guard
		nd.coord = New(cfg, clock.NewHLC(nd.wall, testMaxSkew), st, tr, topo, nil)
		nd.check, err = NewClockCheck(ClockCheckConfig{Interval: time.Second, Registerer: prometheus.NewRegistry()}, nd.coord)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	return nodes
}

// rounds runs one clock check round on every node.
func rounds(t *testing.T, nodes []*guardedNode) {
	t.Helper()
	for _, nd := range nodes {
		nd.check.Round(t.Context())
	}
}

// setAheadAndMeasure runs a round on every node, sets nd's clock 10 s ahead,
// and runs another, which must find nd skewed.
func setAheadAndMeasure(t *testing.T, nodes []*guardedNode, nd *guardedNode) {
	t.Helper()
	rounds(t, nodes)
	nd.wall.Set(10 * time.Second)
	nd.guard.Refresh()
	rounds(t, nodes)
	if err := nd.check.Err(); !errors.Is(err, clock.ErrSkewed) {
		t.Fatalf("%s 10 s ahead after a round: %v", nd.id, err)
	}
}

func quorumGet(t *testing.T, co *Coordinator, key string) (string, bool) {
	t.Helper()
	rec, found, err := co.Get(t.Context(), []byte(key), Quorum)
	if err != nil {
		t.Fatalf("QUORUM GET %s: %v", key, err)
	}
	return string(rec.Value), found
}

// Issue 29 case 2, in process: a node an hour ahead stores its own write,
// the others refuse it; QUORUM reads must neither copy it into a healthy
// store nor return it, a later write through a healthy node must be what
// every node reads, the fast node must refuse writes until its clock is
// back, and then take them again.
func TestClockAheadNodeHidesNoWrite(t *testing.T) {
	nodes := newGuardedCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	// ALL, not QUORUM: the test reads every replica's store below, and a
	// QUORUM write may still be on its way to the third.
	if err := put(t, n2.coord, "k", "v0", All); err != nil {
		t.Fatal(err)
	}
	n1.wall.Set(time.Hour)

	// Before the clock check has run: the peers refuse the write, so it is
	// not acknowledged, but n1's own replica keeps it.
	if err := put(t, n1.coord, "k", "from-the-future", Quorum); err == nil {
		t.Fatal("a QUORUM write stamped an hour ahead was acknowledged")
	}
	if rec, _, _ := n1.store.Get([]byte("k")); string(rec.Value) != "from-the-future" {
		t.Fatalf("n1's replica holds %q; the test needs the future record there", rec.Value)
	}
	if v, _ := quorumGet(t, n2.coord, "k"); v != "v0" {
		t.Fatalf("QUORUM GET through n2 = %q, want v0: a version from the future was picked", v)
	}
	for _, nd := range []*guardedNode{n2, n3} {
		if rec, _, _ := nd.store.Get([]byte("k")); string(rec.Value) != "v0" {
			t.Fatalf("%s's replica holds %q after reads: read repair stored a version from the future", nd.id, rec.Value)
		}
	}

	rounds(t, nodes)
	err := put(t, n1.coord, "k", "refused", Quorum)
	if !errors.Is(err, clock.ErrSkewed) || !strings.Contains(err.Error(), "1h0m0s ahead of its peers; not accepting writes") {
		t.Fatalf("write through the skewed node: %v", err)
	}
	if errs := n1.coord.PutBatch(t.Context(), [][]byte{[]byte("k")}, []Mutation{{Value: []byte("b")}}, Quorum); !errors.Is(errs[0], clock.ErrSkewed) {
		t.Fatalf("batched write through the skewed node: %v", errs[0])
	}
	for _, nd := range []*guardedNode{n2, n3} {
		if err := nd.check.Err(); err != nil {
			t.Fatalf("%s, whose clock is right, calls itself skewed: %v", nd.id, err)
		}
	}

	if err := put(t, n2.coord, "k", "v2", Quorum); err != nil {
		t.Fatalf("SET through a healthy node: %v", err)
	}
	for _, nd := range nodes {
		if v, _ := quorumGet(t, nd.coord, "k"); v != "v2" {
			t.Fatalf("QUORUM GET through %s = %q, want v2", nd.id, v)
		}
		rec, found, err := nd.coord.Get(t.Context(), []byte("k"), One)
		if err != nil || !found || string(rec.Value) != "v2" {
			t.Fatalf("ONE GET through %s = %q %v %v, want v2", nd.id, rec.Value, found, err)
		}
	}

	n1.wall.Set(0)
	for i := 0; n1.check.Err() != nil; i++ {
		if i == 10 {
			t.Fatalf("n1 still skewed after its clock came back: %v", n1.check.Err())
		}
		rounds(t, nodes)
	}
	if err := put(t, n1.coord, "k", "v3", Quorum); err != nil {
		t.Fatalf("write through n1 once its clock is back: %v", err)
	}
	for _, nd := range nodes {
		if v, _ := quorumGet(t, nd.coord, "k"); v != "v3" {
			t.Fatalf("QUORUM GET through %s = %q, want v3", nd.id, v)
		}
	}
}

// The local read-repair path goes through the store's guard: a record from
// the future is refused and counted, not stored.
func TestLocalReadRepairRefusesTheFuture(t *testing.T) {
	nodes := newGuardedCluster(t, 3)
	n2 := nodes[1]
	future := record.Record{Value: []byte("x"), Version: record.Version{
		TS: clock.MakeTimestamp(time.Now().Add(time.Hour).UnixMilli(), 0), Node: "n1"}}
	local := &n2.coord.topo.ReplicasAt(0)[1]
	if local.ID != "n2" {
		t.Fatalf("replica %s, want n2", local.ID)
	}
	before := n2.guard.Refused()
	n2.coord.repair(t.Context(), []byte("k"), &future, []*Replica{local})
	if _, found, _ := n2.store.Get([]byte("k")); found {
		t.Fatal("local read repair stored a record an hour ahead")
	}
	if n2.guard.Refused() != before+1 {
		t.Fatalf("guard refused %d, want %d", n2.guard.Refused(), before+1)
	}
}

// resolve leaves out versions the guard refuses and does not repair their
// holders, which LWW would not change anyway.
func TestResolveSkipsTheFuture(t *testing.T) {
	g := clock.NewGuard(clock.System{}, testMaxSkew)
	now := time.Now().UnixMilli()
	at := func(ms int64, v string) record.Record {
		return record.Record{Value: []byte(v), Version: record.Version{TS: clock.MakeTimestamp(ms, 0), Node: "x"}}
	}
	a, b, c := &Replica{ID: "a"}, &Replica{ID: "b"}, &Replica{ID: "c"}
	answers := []readResult{
		{rep: a, rec: at(now+3_600_000, "future"), found: true},
		{rep: b, rec: at(now-1000, "old"), found: true},
		{rep: c},
	}
	rec, found, stale := resolve(answers, g)
	if !found || string(rec.Value) != "old" {
		t.Fatalf("resolved %q %v, want old", rec.Value, found)
	}
	if len(stale) != 1 || stale[0] != c {
		t.Fatalf("stale %v, want only c", stale)
	}
	if rec, _, _ := resolve(answers, nil); string(rec.Value) != "future" {
		t.Fatalf("without a guard resolve picked %q", rec.Value)
	}
	if _, found, _ := resolve(answers[:1], g); found {
		t.Fatal("only a future version, yet found")
	}
}

// Once a round has found its clock right, a node whose clock jumps refuses
// its very next write, before the next round: nothing stamped in the
// future reaches even its own replica, so no read can return it and later
// lose it.
func TestClockJumpRefusesTheNextWrite(t *testing.T) {
	nodes := newGuardedCluster(t, 3)
	n1 := nodes[0]
	rounds(t, nodes)
	if err := put(t, n1.coord, "k", "v1", Quorum); err != nil {
		t.Fatal(err)
	}
	n1.wall.Set(10 * time.Second)
	err := put(t, n1.coord, "k", "future", Quorum)
	if !errors.Is(err, clock.ErrSkewed) || !strings.Contains(err.Error(), "jumped 10s ahead") {
		t.Fatalf("first write after the jump: %v", err)
	}
	if rec, _, _ := n1.store.Get([]byte("k")); string(rec.Value) != "v1" {
		t.Fatalf("n1's replica holds %q", rec.Value)
	}
	rounds(t, nodes)
	if err := n1.check.Err(); !errors.Is(err, clock.ErrSkewed) {
		t.Fatalf("after a round: %v", err)
	}
	n1.wall.Set(0)
	rounds(t, nodes)
	if err := put(t, n1.coord, "k", "v2", Quorum); err != nil {
		t.Fatalf("once the clock is back: %v", err)
	}
}

// Docs/chaos.md bug 8, in process: n2's clock jumps 10 s ahead, a round
// finds it skewed (the guard is corrected by ~10 s), and then its clock is
// set right again (the fault's heal) before the next round. Writes through
// n1 must still reach n2's replica, and QUORUM reads through n2 must return
// them: with the correction left at 10 s on a clock that is right again,
// n2 took every current version for one 10 s in the future, refused it as a
// replica and skipped it in resolve, answering not-found.
func TestClockSetRightReadsAcknowledgedWrites(t *testing.T) {
	nodes := newGuardedCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]
	rounds(t, nodes)
	if err := put(t, n1.coord, "k", "v1", Quorum); err != nil {
		t.Fatal(err)
	}
	n2.wall.Set(10 * time.Second)
	n2.guard.Refresh() // as the debug endpoint does
	rounds(t, nodes)
	if err := n2.check.Err(); !errors.Is(err, clock.ErrSkewed) {
		t.Fatalf("n2 10 s ahead after a round: %v", err)
	}
	if err := put(t, n1.coord, "k", "v2", Quorum); err != nil {
		t.Fatal(err)
	}
	if v, found := quorumGet(t, n2.coord, "k"); v != "v2" {
		t.Fatalf("while 10 s ahead, QUORUM GET through n2 = %q (found %v), want v2", v, found)
	}

	n2.wall.Set(0) // the heal: no round yet
	n2.guard.Refresh()
	if err := put(t, n1.coord, "k", "v3", Quorum); err != nil {
		t.Fatal(err)
	}
	if v, found := quorumGet(t, n2.coord, "k"); v != "v3" {
		t.Fatalf("after the heal, before a round: QUORUM GET through n2 = %q (found %v), want v3", v, found)
	}
	if rec, _, _ := n2.store.Get([]byte("k")); string(rec.Value) != "v3" {
		t.Fatalf("after the heal, n2's replica holds %q: it refused a current write", rec.Value)
	}
}

// Bug #11 of docs/chaos.md, in process: n2's clock runs 10 s ahead and a
// round measures it against both peers; then n2's clock is set right while
// its peers do not answer its clock readings in time (a partition that heals
// later). Their samples from before the heal are still fresh enough to
// count: unless they count with the step, n2 corrects its right clock by
// 10 s and refuses every current version, and once the peers answer again
// its QUORUM reads hide acknowledged writes.
func TestClockSetRightWhilePeersAreSilent(t *testing.T) {
	nodes := newGuardedCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	setAheadAndMeasure(t, nodes, n2)
	// The peers answer after the round's deadline (300 ms). The hook is
	// switched, not replaced: the late answers still run it.
	var silent atomic.Bool
	late := func() {
		if silent.Load() {
			time.Sleep(time.Second)
		}
	}
	n1.onTime, n3.onTime = late, late
	silent.Store(true)
	n2.wall.Set(0)
	n2.guard.Refresh()
	n2.check.Round(t.Context())
	silent.Store(false)
	if c := n2.guard.Correction(); c > testMaxSkew || c < -testMaxSkew {
		t.Fatalf("after the heal and a round without answers, n2's guard corrects its right clock by %v", c)
	}
	if err := put(t, n1.coord, "k", "v1", Quorum); err != nil {
		t.Fatal(err)
	}
	if v, found := quorumGet(t, n2.coord, "k"); v != "v1" {
		t.Fatalf("QUORUM GET through n2 = %q (found %v), want v1", v, found)
	}
}

// The same shape without a correction: a node whose clock agreed with its
// peers steps 10 s back (an NTP step, or a jump's heal that lands before
// the first round saw the jump). Until its next round its guard measures
// versions against a clock 10 s behind.
func TestClockStepBackReadsAcknowledgedWrites(t *testing.T) {
	nodes := newGuardedCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]
	rounds(t, nodes)
	n2.wall.Set(-10 * time.Second)
	n2.guard.Refresh()
	if err := put(t, n1.coord, "k", "v1", Quorum); err != nil {
		t.Fatal(err)
	}
	if v, found := quorumGet(t, n2.coord, "k"); v != "v1" {
		t.Fatalf("after a step back, before a round: QUORUM GET through n2 = %q (found %v), want v1", v, found)
	}
	if rec, _, _ := n2.store.Get([]byte("k")); string(rec.Value) != "v1" {
		t.Fatalf("after a step back, n2's replica holds %q: it refused a current write", rec.Value)
	}
}

// The heal lands in the middle of a round: n2 sent its clock readings while
// 10 s ahead and is set right before the round ends. The round's samples
// say 10 s ahead of a clock that no longer is; applied as the correction
// from then on, they would hide every current version until the next
// round, as in bug 8. A round across which the clock stepped is not
// applied; the correction in force follows the step.
func TestClockSetRightDuringARound(t *testing.T) {
	nodes := newGuardedCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]
	setAheadAndMeasure(t, nodes, n2)
	n1.onTime = func() { n2.wall.Set(0) }
	n2.check.Round(t.Context())
	n1.onTime = nil
	if err := put(t, n1.coord, "k", "v1", Quorum); err != nil {
		t.Fatal(err)
	}
	if v, found := quorumGet(t, n2.coord, "k"); v != "v1" {
		t.Fatalf("after a heal during a round: QUORUM GET through n2 = %q (found %v), want v1", v, found)
	}
	if rec, _, _ := n2.store.Get([]byte("k")); string(rec.Value) != "v1" {
		t.Fatalf("after a heal during a round, n2's replica holds %q: it refused a current write", rec.Value)
	}
	n2.check.Round(t.Context())
	if err := n2.check.Err(); err != nil {
		t.Fatalf("n2 still skewed a round after its clock came back: %v", err)
	}
}
