package failpoint

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeCluster records what the faults ask of it; it is the seam for testing
// which nodes a fault picks, not a cluster.
type fakeCluster struct {
	n       int
	members []int
	killed  []int
	sides   [][]int
}

var _ Resizer = (*fakeCluster)(nil)

func (f *fakeCluster) Nodes() int     { return f.n }
func (f *fakeCluster) Members() []int { return slices.Clone(f.members) }
func (f *fakeCluster) Kill(_ context.Context, i int) error {
	f.killed = append(f.killed, i)
	return nil
}
func (f *fakeCluster) Restart(context.Context, int) error { return nil }
func (f *fakeCluster) Partition(_ context.Context, side []int) error {
	f.sides = append(f.sides, side)
	return nil
}
func (f *fakeCluster) PartitionOneWay(_ context.Context, from, to int) error {
	f.sides = append(f.sides, []int{from, to})
	return nil
}
func (f *fakeCluster) Heal(context.Context) error                          { return nil }
func (f *fakeCluster) Pause(context.Context, int) error                    { return nil }
func (f *fakeCluster) Unpause(context.Context, int) error                  { return nil }
func (f *fakeCluster) SkewClock(context.Context, int, time.Duration) error { return nil }
func (f *fakeCluster) Join(context.Context) (int, error) {
	f.members = append(f.members, f.n)
	f.n++
	return f.n - 1, nil
}
func (f *fakeCluster) Decommission(_ context.Context, i int) error {
	f.members = slices.DeleteFunc(f.members, func(m int) bool { return m == i })
	return nil
}

// Faults act only on current members, whatever numbers left nodes keep.
func TestFaultsPickMembers(t *testing.T) {
	f := &fakeCluster{n: 6, members: []int{1, 3, 5}}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		for _, fp := range []Failpoint{Kill, Isolate, Majority, OneWay} {
			if _, _, err := fp.Inject(t.Context(), f, rnd); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, i := range f.killed {
		if !slices.Contains(f.members, i) {
			t.Fatalf("killed n%d, not a member of %v", i+1, f.members)
		}
	}
	for _, side := range f.sides {
		for _, i := range side {
			if !slices.Contains(f.members, i) {
				t.Fatalf("partition side %v holds non-member n%d", side, i+1)
			}
		}
		if len(side) == 2 && side[0] == side[1] {
			t.Fatalf("one-way cut from a node to itself: %v", side)
		}
	}
}

// Whatever order join and decommission are drawn in, membership stays within
// [3, MaxMembers]: the cluster never drops below RF nor grows without bound.
func TestTopologyFaultsStayInBounds(t *testing.T) {
	f := &fakeCluster{n: 3, members: []int{0, 1, 2}}
	rnd := rand.New(rand.NewPCG(3, 4))
	var joins, decoms int
	for range 200 {
		fp := Join
		if rnd.IntN(2) == 0 {
			fp = Decommission
		}
		desc, heal, err := fp.Inject(t.Context(), f, rnd)
		if err != nil {
			t.Fatal(err)
		}
		if err := heal(t.Context()); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(desc, "join") {
			joins++
		} else {
			decoms++
		}
		if m := len(f.members); m < MinMembers-1 || m > MaxMembers {
			t.Fatalf("after %q: %d members", desc, m)
		}
	}
	if joins == 0 || decoms == 0 {
		t.Fatalf("%d joins, %d decommissions: one kind never ran", joins, decoms)
	}
}
