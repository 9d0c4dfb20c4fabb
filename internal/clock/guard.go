package clock

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Guard refuses versions stamped too far in this node's future: the one
// check that every path storing a record passes (storage.Options.Guard), and
// that a read's resolver asks before it picks a version as the answer. A
// record the guard refuses would, under last-write-wins, shadow every write
// the cluster makes until real time caught up with it.
//
// The reference is this node's wall clock less what the offset check knows
// its offset from its peers' to be (SetCorrection). On a node whose clock
// jumped an hour ahead, the records it stamped in that hour are then refused
// here too, and its reads do not return them, although its own clock calls
// them current; on a node an hour behind, its peers' current versions are
// not taken for the future, and its reads return them.
//
// Check is on every write and on every read that picks a version, so it
// does not read the clock each time: it compares with a bound cached at the
// last refresh, and reads the clock only for a version past it. A version is
// normally stamped at or before now, so the slow path runs about once per
// maxSkew on a busy node. The cost is that a bound may be stale-high by as
// much as the clock stepped back since the last refresh; Refresh, called by
// the offset check every round and by SetCorrection, bounds that staleness.
type Guard struct {
	wall    Clock
	maxSkew time.Duration
	corr    atomic.Int64 // a time.Duration: this node's offset from its peers, when known
	// corrGap is Gap(wall) when corr was set: a later step of the wall
	// clock changes Gap by the step, and the offset with it (see effective).
	corrGap atomic.Int64
	// measured: SetCorrection has been called, so that corrGap is the
	// wall clock's reading against the monotonic one as of a measurement.
	measured atomic.Bool
	bound    atomic.Int64 // the newest physical ms accepted, as of the last refresh
	refused  atomic.Uint64
	// own and alone: while the node has no peer to compare clocks with,
	// versions up to its own HLC's last are accepted (see SetAlone).
	own   atomic.Pointer[HLC]
	alone atomic.Bool
}

// NewGuard returns a guard that refuses versions more than maxSkew ahead of
// wall. maxSkew must be positive.
func NewGuard(wall Clock, maxSkew time.Duration) *Guard {
	g := &Guard{wall: wall, maxSkew: maxSkew}
	g.Refresh()
	return g
}

// TrustOwn gives the guard the node's HLC, for SetAlone.
func (g *Guard) TrustOwn(h *HLC) {
	g.own.Store(h)
	g.alone.Store(true) // until a clock check has measured a peer
}

// SetAlone says whether the node has no peer to compare clocks with. A node
// alone accepts what its own HLC has stamped even when its wall clock has
// stepped back further than the maximum skew: its HLC kept its versions in
// order, nothing from another node's clock can be in them, and refusing them
// would fail every write and hide every recent record until the wall clock
// caught up. With peers, the clock check decides instead.
func (g *Guard) SetAlone(alone bool) { g.alone.Store(alone) }

// MaxSkew returns the configured maximum skew.
func (g *Guard) MaxSkew() time.Duration { return g.maxSkew }

// SetCorrection tells the guard how far this node's clock is known to be
// ahead of its peers' (negative: behind; 0 when it agrees with them), so
// that the guard measures versions against the peers' time rather than this
// node's.
func (g *Guard) SetCorrection(d time.Duration) {
	g.corrGap.Store(Gap(g.wall))
	g.corr.Store(int64(d))
	g.measured.Store(true)
	g.Refresh()
}

// effective is the correction as it stands now: the one measured, plus any
// step of the wall clock since (the wall read against the monotonic clock).
// A node whose clock ran 10 s ahead and was set right again would
// otherwise go on taking 10 s off a clock that is now right until its next
// measurement, and in that time refuse every current version, as a replica
// and in its reads, hiding acknowledged writes (docs/chaos.md, bug 8).
//
// A correction of 0 measured against peers follows a step too: a clock
// that agreed with its peers and steps 10 s back (an NTP step, or a jump's
// heal before any round saw the jump) would otherwise take every current
// version for one 10 s in the future until its next measurement, the same
// hidden writes. Only a node that has never measured a peer, or has none
// now (SetAlone), follows its wall clock wherever it steps.
func (g *Guard) effective() time.Duration {
	c := g.corr.Load()
	if c == 0 && (!g.measured.Load() || g.alone.Load()) {
		return 0
	}
	return time.Duration(c + Gap(g.wall) - g.corrGap.Load())
}

// Correction returns what SetCorrection last set.
func (g *Guard) Correction() time.Duration { return time.Duration(g.corr.Load()) }

// Refresh recomputes the cached bound from the clock.
func (g *Guard) Refresh() int64 {
	b := g.wall.Now().Add(g.maxSkew - g.effective()).UnixMilli()
	g.bound.Store(b)
	return b
}

// Future reports whether ts is further ahead than the guard allows, without
// counting it: for readers that skip such a version rather than refuse it.
func (g *Guard) Future(ts Timestamp) bool {
	p := ts.Physical()
	return p > g.bound.Load() && p > g.Refresh() && !g.ownStamp(ts)
}

// ownStamp reports whether a node alone stamped ts itself (see SetAlone).
func (g *Guard) ownStamp(ts Timestamp) bool {
	h := g.own.Load()
	return h != nil && g.alone.Load() && ts <= h.Last()
}

// Check returns an error wrapping ErrClockSkew for a version the guard
// refuses, and counts it.
func (g *Guard) Check(ts Timestamp) error {
	p := ts.Physical()
	if p <= g.bound.Load() {
		return nil
	}
	b := g.Refresh()
	if p <= b || g.ownStamp(ts) {
		return nil
	}
	g.refused.Add(1)
	return fmt.Errorf("%w: version %s is %s ahead of this node's clock (max %s)", ErrClockSkew, ts,
		time.Duration(p-b)*time.Millisecond+g.maxSkew, g.maxSkew)
}

// Refused returns how many versions Check has refused.
func (g *Guard) Refused() uint64 { return g.refused.Load() }
