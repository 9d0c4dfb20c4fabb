package server

import (
	"fmt"
	"sync"
	"testing"

	"github.com/ringkv/ringkv/internal/membership"
)

// Views installed at once from several goroutines are built one at a time,
// each from members read after the previous view went in, so the last view
// holds the members the source gave last.
func TestTopologyUpdateKeepsLatestMembers(t *testing.T) {
	topo := newTopology("n1", 3, 8, 0)
	var mu sync.Mutex
	calls, stale := 0, 0
	source := func() []membership.Member {
		mu.Lock()
		defer mu.Unlock()
		if len(topo.cur.Load().members) != calls {
			stale++ // read while another update was still to store its view
		}
		calls++
		out := make([]membership.Member, calls)
		for i := range out {
			out[i] = membership.Member{Meta: membership.Meta{ID: fmt.Sprintf("n%d", i+1), State: membership.Normal}, Up: true}
		}
		return out
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				topo.update(source)
			}
		})
	}
	wg.Wait()
	if stale > 0 {
		t.Errorf("%d of %d reads of the members raced another update", stale, calls)
	}
	if got := len(topo.cur.Load().members); got != calls {
		t.Fatalf("view holds %d members, the source last gave %d", got, calls)
	}
}
