package rebalance

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage"
)

// A streamed record this node's clock guard refuses is skipped and the range
// completes; it used to fail the page, and the pull, on every retry, for as
// long as the record stayed in the future: a join that never finished.
func TestPullSkipsRecordsRefusedForClockSkew(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	cur := ring.New(nodes("a", "b", "c"), 8, 3)
	fut := ring.New(nodes("a", "b", "c", "d"), 8, 3)
	const n = 500
	future := map[string]bool{}
	for i := range n {
		k := "key" + strconv.Itoa(i)
		if i%50 == 0 {
			future[k] = true
		}
		if _, err := src.Apply([]byte(k), record.Record{Value: []byte("v"), Version: record.Version{TS: clock.Timestamp(100), Node: "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	net := &direct{stores: map[string]*storage.Store{"a": src, "b": src, "c": src}}
	p := NewPuller(Config{
		Self: "d", Store: dst, Caller: net, Peers: net, Rate: 1 << 30, PageBytes: 2048, Parallel: 1,
		Apply: func(k []byte, r record.Record) error {
			if future[string(k)] {
				return fmt.Errorf("%w: 1h ahead", clock.ErrClockSkew)
			}
			_, err := dst.Apply(k, r)
			return err
		},
	})
	tasks := Plan(cur, fut, "d")
	if err := p.Pull(t.Context(), tasks); err != nil {
		t.Fatalf("pull failed on a refused record: %v", err)
	}
	if left, _ := p.Remaining(tasks); left != 0 {
		t.Fatalf("%d ranges left", left)
	}
	for i := range n {
		k := []byte("key" + strconv.Itoa(i))
		_, ok, _ := dst.Get(k)
		if want := containsID(fut.Replicas(k), "d") && !future[string(k)]; ok != want {
			t.Fatalf("%s on d: %v, want %v", k, ok, want)
		}
	}
}
