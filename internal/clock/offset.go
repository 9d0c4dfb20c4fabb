package clock

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// ErrSkewed is returned for a write that a node refuses to coordinate while
// its clock is further from its peers' than the guard allows: every version
// it stamped would be refused by the other replicas, or would shadow theirs.
var ErrSkewed = errors.New("clock skew")

// Sample is one clock reading exchanged with a peer, NTP style: this node
// read its wall clock (sent), the peer answered with its own (peer), and the
// answer came back rtt later (measured on the monotonic clock).
type Sample struct {
	// Offset is how far this node's clock is ahead of the peer's (negative:
	// behind), taking the peer's reading to be from the middle of the trip.
	Offset time.Duration
	// Uncertainty bounds the error of Offset: the peer read its clock
	// somewhere within the round trip, so the true offset is within
	// Offset ± rtt/2.
	Uncertainty time.Duration
	// At is when the sample was taken (Mono).
	At time.Duration
	// Gap is this node's wall clock read against the monotonic one (Gap)
	// when the sample was taken; 0 when unknown. Offset is relative to the
	// wall clock of then: after a step of it, Estimates moves the offset by
	// the step.
	Gap int64
}

// Measure turns one exchange into a Sample. The extra half millisecond of
// uncertainty is the resolution of the HLC: an estimate should not claim more
// precision than the versions it protects.
func Measure(sent, peer time.Time, rtt time.Duration, at time.Duration) Sample {
	rtt = max(rtt, 0)
	mid := sent.Add(rtt / 2)
	return Sample{Offset: mid.Sub(peer), Uncertainty: rtt/2 + time.Millisecond/2, At: at}
}

// Estimator keeps each peer's recent samples and estimates its offset from
// them: of the last Keep samples no older than MaxAge, the one with the
// shortest round trip, whose reading is the least disturbed by queueing (the
// clock filter NTP uses). It is safe for concurrent use.
type Estimator struct {
	// Keep is how many recent samples per peer are kept. Few, so that a
	// clock that jumps (or comes back) is seen within a few rounds.
	Keep int
	// MaxAge drops samples of a peer that stopped answering.
	MaxAge time.Duration

	mu struct {
		sync.Mutex
		peers map[string][]Sample
	}
}

// NewEstimator returns an estimator keeping keep samples per peer, each for
// at most maxAge.
func NewEstimator(keep int, maxAge time.Duration) *Estimator {
	e := &Estimator{Keep: max(keep, 1), MaxAge: maxAge}
	e.mu.peers = map[string][]Sample{}
	return e
}

// Observe adds a sample from peer.
func (e *Estimator) Observe(peer string, s Sample) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ss := append(e.mu.peers[peer], s)
	if len(ss) > e.Keep {
		ss = slices.Delete(ss, 0, len(ss)-e.Keep)
	}
	e.mu.peers[peer] = ss
}

// Forget drops a peer's samples (it left the cluster).
func (e *Estimator) Forget(peer string) {
	e.mu.Lock()
	delete(e.mu.peers, peer)
	e.mu.Unlock()
}

// PeerOffset is the estimated offset of this node's clock from one peer's.
type PeerOffset struct {
	Peer        string        `json:"peer"`
	Offset      time.Duration `json:"offset"`
	Uncertainty time.Duration `json:"uncertainty"`
}

// Estimates returns an estimate for each peer in peers that has a sample no
// older than MaxAge at now (Mono), in the order of peers, as of the wall
// clock whose Gap is gap: a sample taken before a step of that clock counts
// with the step (a sample's Gap or gap of 0 takes it as it was). Without
// that, a peer that stopped answering after this node's clock was set right
// kept its sample from before, and the node went on correcting its guard by
// a step that was gone, hiding current versions (docs/chaos.md, #11).
func (e *Estimator) Estimates(peers []string, now time.Duration, gap int64) []PeerOffset {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []PeerOffset
	for _, p := range peers {
		best, ok := Sample{}, false
		for _, s := range e.mu.peers[p] {
			if e.MaxAge > 0 && now-s.At > e.MaxAge {
				continue
			}
			if !ok || s.Uncertainty < best.Uncertainty {
				best, ok = s, true
			}
		}
		if ok {
			off := best.Offset
			if best.Gap != 0 && gap != 0 {
				// The wall clock stepped since the sample by the change in
				// its gap, and this node's offset from the peer with it.
				off += time.Duration(gap - best.Gap)
			}
			out = append(out, PeerOffset{Peer: p, Offset: off, Uncertainty: best.Uncertainty})
		}
	}
	return out
}

// Assessment is what a node concludes about its own clock from its
// estimates of its peers'.
type Assessment struct {
	// Skewed is set when the clock is further than the threshold from the
	// clocks of a majority of the peers measured, beyond what the
	// measurements' uncertainty could explain. With no peer measured it is
	// false: a node alone has no one to disagree with.
	Skewed bool
	// Offset is the median of the peers' offsets: how far this node's clock
	// is ahead of the cluster's (negative: behind).
	Offset time.Duration
	// Correction is, when Skewed, how far this node's clock is at least off
	// from the cluster's (the median of the offsets' bounds nearest zero;
	// negative when behind); 0 otherwise. The guard measures versions
	// against wall time less Correction.
	Correction time.Duration
	// Measured is the number of peers with an estimate; Off the number of
	// them further than the threshold.
	Measured, Off int
	Peers         []PeerOffset
}

// Assess judges a node's clock from its peers' estimates: it is skewed when
// more than half of them are further than threshold away, even allowing for
// each one's uncertainty. A majority, because one peer's clock that is off
// must not stop the healthy nodes that see it: with three nodes and one an
// hour ahead, that node sees both peers off, and each healthy one sees one
// of two.
func Assess(ests []PeerOffset, threshold time.Duration) Assessment {
	a := Assessment{Measured: len(ests), Peers: ests}
	if len(ests) == 0 {
		return a
	}
	offs := make([]time.Duration, 0, len(ests))
	lows := make([]time.Duration, 0, len(ests))
	for _, p := range ests {
		offs = append(offs, p.Offset)
		// The bound of the offset nearest zero: the least this node is
		// ahead (or behind) by; zero when the uncertainty spans zero.
		low := max(p.Offset-p.Uncertainty, 0)
		if p.Offset < 0 {
			low = min(p.Offset+p.Uncertainty, 0)
		}
		lows = append(lows, low)
		if abs(p.Offset)-p.Uncertainty > threshold {
			a.Off++
		}
	}
	a.Offset = median(offs)
	a.Skewed = 2*a.Off > a.Measured
	if a.Skewed {
		a.Correction = median(lows)
	}
	return a
}

// Err is the error a skewed node answers a write with; nil when not skewed.
func (a Assessment) Err() error {
	if !a.Skewed {
		return nil
	}
	dir, d := "ahead of", a.Offset
	if d < 0 {
		dir, d = "behind", -d
	}
	return fmt.Errorf("%w: this node's clock is %s %s its peers; not accepting writes", ErrSkewed, Round(d), dir)
}

// Round rounds an offset for people: to the second past a minute, where
// milliseconds are noise, and to the millisecond below.
func Round(d time.Duration) time.Duration {
	if abs(d) >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return s[n/2-1]/2 + s[n/2]/2
}
