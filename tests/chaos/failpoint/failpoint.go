// Package failpoint holds the faults the chaos suite injects. A fault acts on
// a Cluster, which the Docker cluster (iptables, docker kill/pause, the debug
// clock endpoint) and the in-process simulation (MemNetwork, injected clocks)
// both implement, so a scenario names faults without knowing which it runs on.
package failpoint

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Cluster is what a fault needs from a cluster. Methods may be called from one
// goroutine at a time; nodes are numbered 0..Nodes()-1, and a node keeps its
// number for the whole run, even after it leaves the ring.
type Cluster interface {
	Nodes() int
	// Members returns the nodes now in the ring and running, ascending: the
	// ones a fault may act on.
	Members() []int
	// Kill stops node i at once, without a graceful shutdown (kill -9).
	Kill(ctx context.Context, i int) error
	// Restart starts a killed node again on its existing data.
	Restart(ctx context.Context, i int) error
	// Partition cuts every link between the nodes in side and the others,
	// both ways. Clients still reach every node.
	Partition(ctx context.Context, side []int) error
	// PartitionOneWay drops what from sends to to; to's messages still arrive.
	PartitionOneWay(ctx context.Context, from, to int) error
	// Heal removes every partition.
	Heal(ctx context.Context) error
	// Pause freezes node i (SIGSTOP); Unpause thaws it.
	Pause(ctx context.Context, i int) error
	Unpause(ctx context.Context, i int) error
	// SkewClock shifts node i's wall clock by d (0 restores it).
	SkewClock(ctx context.Context, i int, d time.Duration) error
}

// Resizer is a cluster whose membership a fault can change. Topology changes
// run one at a time, as the server allows.
type Resizer interface {
	Cluster
	// Join starts a new node with an empty data directory that joins during
	// load, waits until every member sees it normal, and returns its number.
	Join(ctx context.Context) (int, error)
	// Decommission streams node i's ranges to their new owners, waits until
	// every member sees it removed, then stops it for good.
	Decommission(ctx context.Context, i int) error
}

// Corrupter is a cluster whose nodes' files a fault can damage.
type Corrupter interface {
	Cluster
	// CorruptLog stops node i, damages its log where no torn write could,
	// checks that it then refuses to start, and starts it with --salvage.
	CorruptLog(ctx context.Context, i int, rnd *rand.Rand) (string, error)
	// Resume waits until node i, started with --salvage, has restored its
	// ranges and reports ready, then restarts it with its usual flags, as
	// an operator would once the salvage is done, and waits until it is
	// ready again.
	Resume(ctx context.Context, i int) error
}

// DiskFiller is a cluster that can make one node's data disk full and free
// it again.
type DiskFiller interface {
	Cluster
	// FillDisk makes node i's data disk count as full (true) or frees it.
	FillDisk(ctx context.Context, i int, full bool) error
}

// Membership bounds for the topology faults: never fewer members than the
// replication factor (3), so QUORUM keeps its meaning, and never more than 5,
// so a long run does not keep growing.
const (
	MinMembers = 4 // a decommission needs this many before it starts
	MaxMembers = 5
)

// Failpoint is one kind of fault.
type Failpoint struct {
	Name string
	// Inject starts the fault and returns what undoes it.
	Inject func(ctx context.Context, c Cluster, rnd *rand.Rand) (desc string, heal func(context.Context) error, err error)
}

// MaxSkew is the largest clock offset ClockSkew sets; checkers widen their
// time margins by it.
const MaxSkew = 250 * time.Millisecond

// Kill is kill -9 of one node, then a restart on its data at heal.
var Kill = Failpoint{Name: "kill", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	i := pick(c, rnd)
	return fmt.Sprintf("kill -9 n%d", i+1), func(ctx context.Context) error { return c.Restart(ctx, i) }, c.Kill(ctx, i)
}}

// FormationKill is Kill struck the moment a cluster formed from scratch is
// ready (the runner injects it first, with no calm before it): a cluster
// formed with --initial-cluster has every node normal with the whole ring,
// so losing one then must cost no QUORUM request (issue 29; before, the
// other nodes were still streaming from each other and every QUORUM write
// through the survivors failed).
var FormationKill = Failpoint{Name: "formation-kill", Inject: Kill.Inject}

// CorruptLog damages one node's log while it is down (issue 29): it must
// refuse to start, naming the file, and once started with --salvage restore
// what it lost from its replicas before it reports ready. The heal waits for
// that and restarts it without --salvage; no acknowledged write may be lost
// or hidden meanwhile.
var CorruptLog = Failpoint{Name: "corrupt-log", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	cr, ok := c.(Corrupter)
	if !ok {
		return "corrupt-log", nil, fmt.Errorf("failpoint: %T cannot damage a node's files", c)
	}
	i := pick(c, rnd)
	desc, err := cr.CorruptLog(ctx, i, rnd)
	return desc, func(ctx context.Context) error { return cr.Resume(ctx, i) }, err
}}

// Isolate cuts one node (a minority) off from the rest (the majority).
var Isolate = Failpoint{Name: "partition-minority", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	m := c.Members()
	side := pickN(m, rnd, max(1, (len(m)-1)/2))
	return fmt.Sprintf("partition %v | rest", plus1(side)), c.Heal, c.Partition(ctx, side)
}}

// Majority partitions so that the side of the coordinator that a client uses
// may be the majority or the minority: with 3 nodes it is the same cut as
// Isolate seen from the other side, and with 5 a 2|3 split.
var Majority = Failpoint{Name: "partition-majority", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	m := c.Members()
	side := pickN(m, rnd, len(m)/2+1)
	return fmt.Sprintf("partition %v | rest", plus1(side)), c.Heal, c.Partition(ctx, side)
}}

// OneWay drops one node's messages to another while the reverse passes.
var OneWay = Failpoint{Name: "partition-one-way", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	p := pickN(c.Members(), rnd, 2)
	return fmt.Sprintf("drop n%d -> n%d", p[0]+1, p[1]+1), c.Heal, c.PartitionOneWay(ctx, p[0], p[1])
}}

// Pause freezes one node: it holds connections open and answers nothing,
// which looks like neither a crash nor a partition.
var Pause = Failpoint{Name: "pause", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	i := pick(c, rnd)
	return fmt.Sprintf("pause n%d", i+1), func(ctx context.Context) error { return c.Unpause(ctx, i) }, c.Pause(ctx, i)
}}

// ClockSkew moves one node's clock by up to MaxSkew either way: inside
// --max-clock-skew, so writes are still accepted but versions and expiry
// checks disagree between nodes.
var ClockSkew = Failpoint{Name: "clock-skew", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	i := pick(c, rnd)
	d := time.Duration(rnd.Int64N(int64(2*MaxSkew))) - MaxSkew
	d = d.Round(time.Millisecond)
	return fmt.Sprintf("skew n%d by %v", i+1, d), func(ctx context.Context) error { return c.SkewClock(ctx, i, 0) }, c.SkewClock(ctx, i, d)
}}

// ClockJumps are the jumps ClockJump draws from, all far beyond the servers'
// --max-clock-skew (500ms by default): the short one comes back while
// versions stamped during the jump are still in the future, the long one
// outlasts any run.
var ClockJumps = []time.Duration{10 * time.Second, time.Minute, time.Hour}

// ClockJump moves one node's clock far ahead, as a bad NTP step or a VM
// restored from a snapshot would: beyond the guard, so the other replicas
// refuse what it stamps. Until its clock check notices, writes through it
// are not acknowledged; then it refuses them, and no read may return what it
// stamped meanwhile nor hide a write made through a healthy node (issue 29).
var ClockJump = Failpoint{Name: "clock-jump", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	i := pick(c, rnd)
	d := ClockJumps[rnd.IntN(len(ClockJumps))]
	return fmt.Sprintf("jump n%d's clock %v ahead", i+1, d), func(ctx context.Context) error { return c.SkewClock(ctx, i, 0) }, c.SkewClock(ctx, i, d)
}}

// Join starts a new node during load and holds the fault until the node has
// streamed its ranges and is normal everywhere; the heal does nothing. With
// MaxMembers already in the ring it decommissions one instead, so a run's
// membership stays within bounds whatever order faults are drawn in.
var Join = Failpoint{Name: "join", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	r, ok := c.(Resizer)
	if !ok {
		return "join", nil, fmt.Errorf("failpoint: %T cannot change its membership", c)
	}
	if len(c.Members()) >= MaxMembers {
		return decommission(ctx, r, rnd)
	}
	i, err := r.Join(ctx)
	return fmt.Sprintf("join n%d (now %v)", i+1, plus1(c.Members())), noHeal, err
}}

// Decommission streams one node's ranges away during load, waits until it is
// removed everywhere and stops it. Below MinMembers it joins a node instead.
var Decommission = Failpoint{Name: "decommission", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	r, ok := c.(Resizer)
	if !ok {
		return "decommission", nil, fmt.Errorf("failpoint: %T cannot change its membership", c)
	}
	if len(c.Members()) < MinMembers {
		i, err := r.Join(ctx)
		return fmt.Sprintf("join n%d instead of a decommission (now %v)", i+1, plus1(c.Members())), noHeal, err
	}
	return decommission(ctx, r, rnd)
}}

// DiskFull makes one node's data disk full: it refuses every write its
// replica receives (deletes too) and reports not ready, while it serves
// reads; the others take the writes. At heal the space comes back and the
// node takes writes again by itself; anti-entropy brings it what it refused.
var DiskFull = Failpoint{Name: "disk-full", Inject: func(ctx context.Context, c Cluster, rnd *rand.Rand) (string, func(context.Context) error, error) {
	f, ok := c.(DiskFiller)
	if !ok {
		return "disk-full", nil, fmt.Errorf("failpoint: %T cannot fill a disk", c)
	}
	i := pick(c, rnd)
	return fmt.Sprintf("disk full on n%d", i+1), func(ctx context.Context) error { return f.FillDisk(ctx, i, false) }, f.FillDisk(ctx, i, true)
}}

func decommission(ctx context.Context, r Resizer, rnd *rand.Rand) (string, func(context.Context) error, error) {
	i := pick(r, rnd)
	err := r.Decommission(ctx, i)
	return fmt.Sprintf("decommission n%d (now %v)", i+1, plus1(r.Members())), noHeal, err
}

func noHeal(context.Context) error { return nil }

// Steady is every fault that keeps the membership and touches no node's
// files: what every cluster can run.
func Steady() []Failpoint {
	return []Failpoint{Kill, Isolate, Majority, OneWay, Pause, ClockSkew, ClockJump}
}

// All is every fault the suite knows: Steady, a full disk, a corrupt log
// (faults on a node's files, which the Docker cluster can reach), then join
// and decommission, in that order, so a run that injects each fault once
// grows the cluster before it shrinks it.
func All() []Failpoint { return append(Steady(), DiskFull, CorruptLog, Join, Decommission) }

// pick returns a random member.
func pick(c Cluster, rnd *rand.Rand) int {
	m := c.Members()
	return m[rnd.IntN(len(m))]
}

// pickN returns n distinct random members of m.
func pickN(m []int, rnd *rand.Rand, n int) []int {
	out := make([]int, 0, n)
	for _, j := range rnd.Perm(len(m))[:n] {
		out = append(out, m[j])
	}
	return out
}

func plus1(ns []int) []int {
	out := make([]int, len(ns))
	for i, n := range ns {
		out[i] = n + 1
	}
	return out
}
