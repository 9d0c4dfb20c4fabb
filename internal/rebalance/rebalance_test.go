package rebalance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage"
)

func nodes(ids ...string) []ring.Node {
	var out []ring.Node
	for _, id := range ids {
		out = append(out, ring.Node{ID: id})
	}
	return out
}

func inTasks(tasks []Task, tok uint64) bool {
	for _, t := range tasks {
		if (ring.Range{Start: t.Start, End: t.End}).Contains(tok) {
			return true
		}
	}
	return false
}

// Plan covers exactly the keys whose future replica set gains the node, and
// names as leaving the current replica it displaces.
func TestPlanJoinAndLeave(t *testing.T) {
	cur := ring.New(nodes("a", "b", "c"), 16, 3)
	fut := ring.New(nodes("a", "b", "c", "d"), 16, 3)
	join := Plan(cur, fut, "d")
	if len(join) == 0 {
		t.Fatal("no tasks for a joining node")
	}
	for _, tk := range join {
		if len(tk.Leaving) != 1 || len(tk.Current) != 3 {
			t.Fatalf("task %+v: want one leaving replica of three", tk)
		}
	}
	for i := range 5000 {
		k := []byte("key" + strconv.Itoa(i))
		gains := containsID(fut.Replicas(k), "d")
		if got := inTasks(join, ring.Token(k)); got != gains {
			t.Fatalf("%s: in plan %v, gains d %v", k, got, gains)
		}
	}
	if p := Plan(cur, fut, "a"); len(p) != 0 {
		t.Errorf("a current owner got %d tasks", len(p))
	}
	// Leaving is the same change the other way round: d's ranges go to the
	// node that takes each over, and d is the source.
	for _, id := range []string{"a", "b", "c"} {
		for _, tk := range Plan(fut, cur, id) {
			if len(tk.Leaving) != 1 || tk.Leaving[0].ID != "d" {
				t.Fatalf("%s pulls %+v, want from d", id, tk)
			}
		}
	}
	if p := Plan(ring.New(nil, 16, 3), fut, "d"); p != nil {
		t.Errorf("plan with no current owners: %v", p)
	}
}

func containsID(set []ring.Node, id string) bool {
	for _, n := range set {
		if n.ID == id {
			return true
		}
	}
	return false
}

func TestSegmentsCoverRange(t *testing.T) {
	const top = ^uint64(0)
	in := func(segs []segment, tok uint64) bool {
		for _, s := range segs {
			if tok >= s.from && (s.to == 0 || tok < s.to) {
				return true
			}
		}
		return false
	}
	for _, c := range []struct{ start, end uint64 }{{10, 20}, {20, 10}, {5, 5}, {top, 3}, {3, top}, {top - 1, top}, {0, top}} {
		g := ring.Range{Start: c.start, End: c.end}
		segs := segments(c.start, c.end)
		for _, tok := range []uint64{0, 1, 3, 4, 5, 6, 10, 11, 15, 20, 21, top - 1, top} {
			if got, want := in(segs, tok), g.Contains(tok); got != want {
				t.Errorf("(%d, %d] token %d: in segments %v %v, in range %v", c.start, c.end, tok, segs, got, want)
			}
		}
	}
}

func openStore(t *testing.T) *storage.Store {
	t.Helper()
	s, err := storage.Open(storage.Options{InMemory: true, Clock: clock.System{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// direct serves pages from in-process stores, and can fail after a number
// of calls to simulate a source that dies mid-stream.
type direct struct {
	stores  map[string]*storage.Store
	calls   int
	failAt  int
	applied int
}

func (d *direct) Call(_ context.Context, addr string, _ uint8, payload []byte) ([]byte, error) {
	d.calls++
	if d.failAt > 0 && d.calls == d.failAt {
		return nil, errors.New("connection reset")
	}
	return ServePage(d.stores[addr], payload)
}

func (d *direct) Peer(id string) (string, bool) { _, ok := d.stores[id]; return id, ok }

// A pull copies exactly the planned ranges, resumes after a failure without
// starting over, and an older copy never overwrites a newer one.
func TestPullResumesAndKeepsNewer(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	cur := ring.New(nodes("a", "b", "c"), 8, 3)
	fut := ring.New(nodes("a", "b", "c", "d"), 8, 3)
	ver := func(ts int) record.Version { return record.Version{TS: clock.Timestamp(ts), Node: "x"} }
	const n = 3000
	for i := range n {
		k := []byte("key" + strconv.Itoa(i))
		if _, err := src.Apply(k, record.Record{Value: []byte(fmt.Sprint("old", i)), Version: ver(100)}); err != nil {
			t.Fatal(err)
		}
	}
	// The destination already has a newer value for one moving key.
	var newer []byte
	for i := range n {
		if k := []byte("key" + strconv.Itoa(i)); containsID(fut.Replicas(k), "d") {
			newer = k
			break
		}
	}
	if _, err := dst.Apply(newer, record.Record{Value: []byte("new"), Version: ver(200)}); err != nil {
		t.Fatal(err)
	}

	net := &direct{stores: map[string]*storage.Store{"a": src, "b": src, "c": src}, failAt: 5}
	p := NewPuller(Config{
		Self: "d", Store: dst, Caller: net, Peers: net, Rate: 1 << 30, PageBytes: 2048, Parallel: 1,
		Apply: func(k []byte, r record.Record) error { net.applied++; _, err := dst.Apply(k, r); return err },
	})
	tasks := Plan(cur, fut, "d")
	if err := p.Pull(t.Context(), tasks); err == nil {
		t.Fatal("pull survived a failing source")
	}
	if net.applied == 0 {
		t.Fatal("nothing applied before the failure")
	}
	if err := p.Pull(t.Context(), tasks); err != nil {
		t.Fatal(err)
	}
	if left, _ := p.Remaining(tasks); left != 0 {
		t.Fatalf("%d ranges left after a complete pull", left)
	}
	moved := 0
	for i := range n {
		k := []byte("key" + strconv.Itoa(i))
		rec, ok, _ := dst.Get(k)
		if !containsID(fut.Replicas(k), "d") {
			if ok && string(k) != string(newer) {
				t.Fatalf("%s copied but not planned", k)
			}
			continue
		}
		moved++
		want := fmt.Sprint("old", i)
		if string(k) == string(newer) {
			want = "new"
		}
		if !ok || string(rec.Value) != want {
			t.Fatalf("%s: %q, %v; want %q", k, rec.Value, ok, want)
		}
	}
	// Resuming re-applies at most the pages in flight, not the ranges done.
	if net.applied > moved+100 { // one 2 KiB page holds under 100 records
		t.Errorf("applied %d records for %d moved keys: the resume started over", net.applied, moved)
	}
	if err := p.Reset(); err != nil {
		t.Fatal(err)
	}
	if left, _ := p.Remaining(tasks); left != len(tasks) {
		t.Errorf("after Reset %d of %d ranges left", left, len(tasks))
	}
}
