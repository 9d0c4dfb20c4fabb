package replication

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/diskspace"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/transport"
)

func batchOf(n int, prefix string) (keys [][]byte, muts []Mutation) {
	for i := range n {
		keys = append(keys, []byte(fmt.Sprint(prefix, i)))
		muts = append(muts, Mutation{Value: []byte(fmt.Sprint("v", i))})
	}
	return keys, muts
}

// Every write of a batch lands on every replica, as a Put of each would.
func TestPutBatchWritesEveryReplica(t *testing.T) {
	c := newSimCluster(t, 3)
	keys, muts := batchOf(40, "k")
	muts[7] = Mutation{Tombstone: true}
	for i, err := range c.nodes[1].coord.PutBatch(t.Context(), keys, muts, All) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	for _, n := range c.nodes {
		for i := range keys {
			v, ok := localValue(t, n, string(keys[i]))
			if i == 7 {
				if ok {
					t.Fatalf("%s: deleted k7 holds %q", n.id, v)
				}
				continue
			}
			if !ok || v != fmt.Sprint("v", i) {
				t.Fatalf("%s: k%d = %q, %v", n.id, i, v, ok)
			}
		}
	}
}

// With one replica down, QUORUM writes succeed and leave a hint per write;
// with two down they are UNAVAILABLE and nothing is written.
func TestPutBatchWithReplicasDown(t *testing.T) {
	c := newSimCluster(t, 3)
	c.down(2)
	keys, muts := batchOf(25, "a")
	for i, err := range c.nodes[0].coord.PutBatch(t.Context(), keys, muts, Quorum) {
		if err != nil {
			t.Fatalf("QUORUM write %d with one down: %v", i, err)
		}
	}
	if got := c.nodes[0].hints.Backlog()["n3"]; got != 25 {
		t.Fatalf("hints for n3 = %d, want 25", got)
	}
	for i, err := range c.nodes[0].coord.PutBatch(t.Context(), keys, muts, All) {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("ALL write %d with one down: err = %v, want UNAVAILABLE", i, err)
		}
	}
	c.down(1)
	keys, muts = batchOf(5, "b")
	for i, err := range c.nodes[0].coord.PutBatch(t.Context(), keys, muts, Quorum) {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("QUORUM write %d with two down: err = %v, want UNAVAILABLE", i, err)
		}
		if _, ok := localValue(t, c.nodes[0], string(keys[i])); ok {
			t.Fatalf("an UNAVAILABLE write landed on b%d", i)
		}
	}
}

// Replicas that stop answering make the batch's writes indeterminate
// (TIMEOUT), never UNAVAILABLE, and each one gets a hint.
func TestPutBatchTimeoutIsIndeterminate(t *testing.T) {
	c := newSimCluster(t, 3)
	c.net.SetDropRate(1)
	start := time.Now()
	keys, muts := batchOf(10, "k")
	for i, err := range c.nodes[0].coord.PutBatch(t.Context(), keys, muts, All) {
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("write %d: err = %v, want TIMEOUT", i, err)
		}
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("batch took %v: the request timeout did not end it", elapsed)
	}
	testutil.Eventually(t, 2*time.Second, func() error {
		b := c.nodes[0].hints.Backlog()
		if b["n2"] != 10 || b["n3"] != 10 {
			return fmt.Errorf("backlog %v, want 10 hints each for n2 and n3", b)
		}
		return nil
	})
}

// A replica refusing one write (its version too far in the future) fails that
// write alone; the batch's others are applied.
func TestApplyBatchRefusesOneWrite(t *testing.T) {
	c := newSimCluster(t, 3)
	n2 := c.nodes[1]
	now := n2.coord.hlc.Now()
	ok := record.Record{Value: []byte("ok"), Version: record.Version{TS: now, Node: "n1"}}
	future := record.Record{Value: []byte("no"), Version: record.Version{TS: clock.MakeTimestamp(now.Physical()+time.Hour.Milliseconds(), 0), Node: "n1"}}
	ops := []batchOp{{key: []byte("a"), rec: ok}, {key: []byte("b"), rec: future}, {key: []byte("c"), rec: ok}}
	resp, err := n2.coord.Serve(t.Context(), "n1", MethodApplyBatch, encodeApplyBatch(ops, []int{0, 1, 2}))
	if err != nil {
		t.Fatal(err)
	}
	errs, _, err := decodeApplyBatchResp(resp, []int{0, 1, 2}, ops, "n2")
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[2] != nil || !errors.As(errs[1], new(*transport.RemoteError)) {
		t.Fatalf("errs = %v, want only the second refused", errs)
	}
	for _, k := range []string{"a", "c"} {
		if v, found := localValue(t, n2, k); !found || v != "ok" {
			t.Fatalf("%s = %q, %v", k, v, found)
		}
	}
	if _, found := localValue(t, n2, "b"); found {
		t.Fatal("the refused write was applied")
	}
	// Malformed requests are errors, not panics.
	for _, p := range [][]byte{nil, {0xff}, {2, 1}, append(encodeApplyBatch(ops, []int{0}), 0)} {
		if _, err := n2.coord.Serve(t.Context(), "n1", MethodApplyBatch, p); err == nil {
			t.Fatalf("malformed batch %x accepted", p)
		}
	}
}

// A replica applies a batch's writes in order, as one after the other: two
// writes to one key both land, the later winning, and a stale one after them
// reports the version that beat it. An item that does not decode fails alone.
func TestApplyBatchInOrder(t *testing.T) {
	c := newSimCluster(t, 3)
	n2 := c.nodes[1]
	now := n2.coord.hlc.Now()
	at := func(v string, d int64) record.Record {
		return record.Record{Value: []byte(v), Version: record.Version{TS: clock.MakeTimestamp(now.Physical()+d, 0), Node: "n1"}}
	}
	ops := []batchOp{
		{key: []byte("k"), rec: at("first", 1)},
		{key: []byte("other"), rec: at("o", 1)},
		{key: []byte("k"), rec: at("second", 2)},
		{key: []byte("k"), rec: at("stale", 0)},
	}
	req := encodeApplyBatch(ops, []int{0, 1, 2, 3})
	// A fifth item, well framed but not a write.
	req[0] = 5
	req = appendBytes(req, []byte{0xff, 0xff})
	resp, err := n2.coord.Serve(t.Context(), "n1", MethodApplyBatch, req)
	if err != nil {
		t.Fatal(err)
	}
	ops = append(ops, batchOp{key: []byte("junk")})
	errs, newer, err := decodeApplyBatchResp(resp, []int{0, 1, 2, 3, 4}, ops, "n2")
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[1] != nil || errs[2] != nil || errs[3] != nil || errs[4] == nil {
		t.Fatalf("errs = %v, want only the last refused", errs)
	}
	if newer[0] != nil || newer[2] != nil {
		t.Fatalf("the first two writes of k were superseded: %v", newer)
	}
	if newer[3] == nil || string(newer[3].Value) != "second" {
		t.Fatalf("the stale write of k was beaten by %v, want the second write", newer[3])
	}
	if v, found := localValue(t, n2, "k"); !found || v != "second" {
		t.Fatalf("k = %q, %v; want second", v, found)
	}
}

// A batch frames each write with applyLen instead of encoding it apart
// first, so applyLen must be encodeApply's exact length, across the key and
// value lengths where a varint grows a byte.
func TestApplyLenIsEncodedLength(t *testing.T) {
	for _, kl := range []int{1, 127, 128, 16383, 16384} {
		for _, vl := range []int{0, 127, 128, 1 << 14} {
			key := bytes.Repeat([]byte("k"), kl)
			rec := record.Record{Value: bytes.Repeat([]byte("v"), vl), Version: record.Version{TS: 42, Node: "n1"}, ExpireAt: 7}
			if got, want := applyLen(key, &rec), len(encodeApply(key, &rec)); got != want {
				t.Fatalf("key %d, value %d bytes: applyLen %d, encoded %d", kl, vl, got, want)
			}
		}
	}
}

// A refusal by this node's own store is told alike by Put and by PutBatch
// (a pipeline's SETs): a full disk as a write that landed nowhere, a full
// memory as the store's OOM, neither as a TIMEOUT, which would tell the
// client the write may have been applied. They share one tally; PutBatch
// once told every local failure as a TIMEOUT.
func TestPutAndPutBatchTellLocalRefusalsAlike(t *testing.T) {
	full := &diskspace.FullError{Dir: "n1", Free: 1 << 20, Reserve: 64 << 20}
	for _, tc := range []struct {
		name    string
		refusal error
		want    error
	}{
		{"disk full", full, diskspace.ErrDiskFull},
		{"out of memory", storage.ErrOutOfMemory, storage.ErrOutOfMemory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co := refusingNode(t, tc.refusal)
			_, _, putErr := co.Put(t.Context(), []byte("k"), Mutation{Value: []byte("v")}, Quorum)
			batchErr := co.PutBatch(t.Context(), [][]byte{[]byte("k")}, []Mutation{{Value: []byte("v")}}, Quorum)[0]
			for name, err := range map[string]error{"Put": putErr, "PutBatch": batchErr} {
				if !errors.Is(err, tc.want) || errors.Is(err, ErrTimeout) {
					t.Errorf("%s refused by its own store: %v, want %v and no TIMEOUT", name, err, tc.want)
				}
			}
		})
	}
	// With the peers unreachable as well, every replica refused or was never
	// sent the write, through the fan-out of both paths: UNAVAILABLE.
	c := newSimCluster(t, 3)
	c.net.Down("n2")
	c.net.Down("n3")
	n1 := c.nodes[0]
	co := New(n1.coord.cfg, n1.coord.hlc, refusingStore(t, full), n1.tr, c.topo, nil)
	_, _, putErr := co.Put(t.Context(), []byte("k"), Mutation{Value: []byte("v")}, Quorum)
	batchErr := co.PutBatch(t.Context(), [][]byte{[]byte("k")}, []Mutation{{Value: []byte("v")}}, Quorum)[0]
	for name, err := range map[string]error{"Put": putErr, "PutBatch": batchErr} {
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) {
			t.Errorf("%s refused everywhere: %v, want UNAVAILABLE", name, err)
		}
	}
}

// refusingStore is a store whose guard refuses every write with refusal.
func refusingStore(t *testing.T, refusal error) *storage.Store {
	t.Helper()
	st, err := storage.Open(storage.Options{
		Dir: "refusing", InMemory: true, ExpiryInterval: -1, Logger: slog.New(slog.DiscardHandler),
		Guard: func(storage.Guarded) error { return refusal },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// refusingNode is a one-node cluster on a refusingStore.
func refusingNode(t *testing.T, refusal error) *Coordinator {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeID = "n1"
	topo := &simTopo{reps: []Replica{{ID: "n1", Addr: "n1", Up: true}}}
	return New(cfg, clock.NewHLC(clock.System{}, 500*time.Millisecond), refusingStore(t, refusal), nil, topo, nil)
}

// UNAVAILABLE promises that nothing landed, so a write one replica refused
// while the others still had it on the wire is a TIMEOUT, even when the
// refusal alone leaves it short (ALL): here the others apply it.
func TestRefusalWithRequestsOutIsTimeout(t *testing.T) {
	c := newSimCluster(t, 3)
	n1 := c.nodes[0]
	full := &diskspace.FullError{Dir: "n1", Free: 1 << 20, Reserve: 64 << 20}
	co := New(n1.coord.cfg, n1.coord.hlc, refusingStore(t, full), n1.tr, c.topo, nil)
	_, _, putErr := co.Put(t.Context(), []byte("put"), Mutation{Value: []byte("v")}, All)
	batchErr := co.PutBatch(t.Context(), [][]byte{[]byte("batch")}, []Mutation{{Value: []byte("v")}}, All)[0]
	for name, err := range map[string]error{"put": putErr, "batch": batchErr} {
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("%s: ALL write refused by the coordinator's replica: %v, want TIMEOUT", name, err)
		}
		for _, n := range c.nodes[1:] {
			testutil.Eventually(t, 2*time.Second, func() error {
				if v, ok := localValue(t, n, name); !ok || v != "v" {
					return fmt.Errorf("%s: %s = %q, %v; want the write the others took", n.id, name, v, ok)
				}
				return nil
			})
		}
	}
}
