package topology

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/membership"
)

// Views installed at once from several goroutines are built one at a time,
// each from members read after the previous view went in, so the last view
// holds the members the source gave last.
func TestTopologyUpdateKeepsLatestMembers(t *testing.T) {
	topo := New("n1", 3, 8, 0, nil)
	var mu sync.Mutex
	calls, stale := 0, 0
	source := func() []membership.Member {
		mu.Lock()
		defer mu.Unlock()
		if len(topo.Current().Members) != calls {
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
				topo.Update(source)
			}
		})
	}
	wg.Wait()
	if stale > 0 {
		t.Errorf("%d of %d reads of the members raced another update", stale, calls)
	}
	if got := len(topo.Current().Members); got != calls {
		t.Fatalf("view holds %d members, the source last gave %d", got, calls)
	}
}

func members(up map[string]bool, state membership.State) func() []membership.Member {
	return func() []membership.Member {
		var out []membership.Member
		for id, u := range up {
			out = append(out, membership.Member{Meta: membership.Meta{ID: id, State: state}, Up: u})
		}
		return out
	}
}

// A node that is no longer among the members was removed: the view says so,
// and the client gate refuses with that.
func TestTopologySelfGone(t *testing.T) {
	topo := New("n1", 3, 8, 0, nil)
	if topo.Current().SelfGone {
		t.Fatal("an empty view says this node was removed")
	}
	topo.Update(members(map[string]bool{"n1": true, "n2": true}, membership.Normal))
	if topo.Current().SelfGone {
		t.Fatal("a member is gone")
	}
	topo.Update(members(map[string]bool{"n2": true, "n3": true}, membership.Normal))
	if !topo.Current().SelfGone {
		t.Fatal("a node missing from the members is not gone")
	}
}

// Once formed, the partial rings seen while members appeared stop adding
// pending replicas to writes.
func TestTopologyForgetPrevious(t *testing.T) {
	topo := New("n1", 3, 8, 60e9, nil)
	all := map[string]bool{"n1": true, "n2": true, "n3": true, "n4": true, "n5": true}
	topo.Update(members(map[string]bool{"n1": true, "n2": true, "n3": true}, membership.Normal))
	topo.Update(members(all, membership.Normal))
	pending := 0
	for i := range 200 {
		pending += len(topo.Pending([]byte{byte(i), 'k'}))
	}
	if pending == 0 {
		t.Fatal("no key has a pending replica from the previous ring; the test proves nothing")
	}
	topo.ForgetPrevious()
	for i := range 200 {
		if p := topo.Pending([]byte{byte(i), 'k'}); len(p) != 0 {
			t.Fatalf("key %d still has pending replicas %v", i, p)
		}
	}
	if len(topo.Nodes()) != 5 || len(topo.Replicas([]byte("k"))) != 3 {
		t.Fatalf("forgetPrevious changed the members: %v", topo.Nodes())
	}
}

// After a change the previous ring's replicas stay pending for settle, on
// the clock the topology was given, and no longer once it has passed.
func TestPreviousRingLingersForSettle(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	topo := New("n1", 3, 8, time.Minute, clock)
	topo.Update(members(map[string]bool{"n1": true, "n2": true, "n3": true}, membership.Normal))
	topo.Update(members(map[string]bool{"n1": true, "n2": true, "n3": true, "n4": true, "n5": true}, membership.Normal))
	pending := func() int {
		n := 0
		for i := range 200 {
			n += len(topo.Pending([]byte{byte(i), 'k'}))
		}
		return n
	}
	if pending() == 0 {
		t.Fatal("no key has a pending replica from the previous ring within settle")
	}
	mu.Lock()
	now = now.Add(time.Minute + time.Second)
	mu.Unlock()
	if n := pending(); n != 0 {
		t.Fatalf("%d pending replicas after settle passed on the injected clock", n)
	}
}
