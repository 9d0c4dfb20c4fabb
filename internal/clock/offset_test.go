package clock

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMeasure(t *testing.T) {
	sent := time.UnixMilli(1_000_000)
	// The peer read its clock, 1h behind ours, in the middle of a 10ms trip.
	peer := sent.Add(5 * time.Millisecond).Add(-time.Hour)
	s := Measure(sent, peer, 10*time.Millisecond, 42)
	if s.Offset != time.Hour {
		t.Fatalf("offset %v, want 1h", s.Offset)
	}
	if s.Uncertainty < 5*time.Millisecond || s.Uncertainty > 6*time.Millisecond {
		t.Fatalf("uncertainty %v, want half the round trip (+ HLC resolution)", s.Uncertainty)
	}
	if s.At != 42 {
		t.Fatalf("At %v", s.At)
	}
}

// The estimate is the sample with the shortest round trip among the last
// Keep fresh ones: queueing on one trip does not move it, a jump does within
// Keep samples, and a peer that stopped answering has none.
func TestEstimator(t *testing.T) {
	e := NewEstimator(3, 5*time.Second)
	at := time.Minute
	e.Observe("a", Sample{Offset: 2 * time.Millisecond, Uncertainty: time.Millisecond, At: at})
	e.Observe("a", Sample{Offset: 90 * time.Millisecond, Uncertainty: 100 * time.Millisecond, At: at}) // a queued trip
	got := e.Estimates([]string{"a", "b"}, at, 0)
	if len(got) != 1 || got[0].Peer != "a" || got[0].Offset != 2*time.Millisecond {
		t.Fatalf("estimates %+v, want a at 2ms", got)
	}
	for range 3 { // the peer's clock jumps; three samples later only they count
		e.Observe("a", Sample{Offset: -time.Hour, Uncertainty: 2 * time.Millisecond, At: at})
	}
	if got := e.Estimates([]string{"a"}, at, 0); got[0].Offset != -time.Hour {
		t.Fatalf("after a jump, estimate %v", got[0].Offset)
	}
	if got := e.Estimates([]string{"a"}, at+6*time.Second, 0); len(got) != 0 {
		t.Fatalf("stale samples still estimate %+v", got)
	}
	e.Forget("a")
	if got := e.Estimates([]string{"a"}, at, 0); len(got) != 0 {
		t.Fatalf("forgotten peer still estimated %+v", got)
	}
}

func TestAssess(t *testing.T) {
	ms := time.Millisecond
	po := func(peer string, off, unc time.Duration) PeerOffset {
		return PeerOffset{Peer: peer, Offset: off, Uncertainty: unc}
	}
	const threshold = 400 * time.Millisecond
	for _, tc := range []struct {
		name   string
		ests   []PeerOffset
		skewed bool
		corr   time.Duration
		msg    string
	}{
		{"alone", nil, false, 0, ""},
		{"in step", []PeerOffset{po("a", 3*ms, ms), po("b", -2*ms, ms)}, false, 0, ""},
		// The node an hour ahead sees both peers off ...
		{"an hour ahead", []PeerOffset{po("a", time.Hour, ms), po("b", time.Hour+2*ms, ms)}, true, time.Hour,
			"clock skew: this node's clock is 1h0m0s ahead of its peers; not accepting writes"},
		// ... and each healthy node sees one of its two peers off: no majority.
		{"one peer off", []PeerOffset{po("a", -time.Hour, ms), po("b", ms, ms)}, false, 0, ""},
		{"behind", []PeerOffset{po("a", -2*time.Second, ms), po("b", -2*time.Second, ms)}, true, -2*time.Second + ms,
			"clock skew: this node's clock is 2s behind its peers; not accepting writes"},
		// Past the threshold only within the measurement's error: not proof.
		{"uncertain", []PeerOffset{po("a", 500*ms, 200*ms), po("b", 500*ms, 200*ms)}, false, 0, ""},
		// Two nodes: the one peer disagreeing is a majority of one.
		{"two nodes", []PeerOffset{po("a", time.Hour, ms)}, true, time.Hour - ms, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Assess(tc.ests, threshold)
			if a.Skewed != tc.skewed || a.Correction != tc.corr {
				t.Fatalf("skewed=%v correction=%v, want %v %v (%+v)", a.Skewed, a.Correction, tc.skewed, tc.corr, a)
			}
			err := a.Err()
			if tc.skewed != (err != nil) || err != nil && !errors.Is(err, ErrSkewed) {
				t.Fatalf("Err() = %v", err)
			}
			if tc.msg != "" && (err == nil || err.Error() != tc.msg) {
				t.Fatalf("Err() = %v, want %q", err, tc.msg)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "clock skew: ") {
				t.Fatalf("Err() = %q: the RESP reply is ERR + this text", err)
			}
		})
	}
}

func TestJumpDetector(t *testing.T) {
	wall := NewOffset(System{}, 0)
	j := NewJumpDetector(400 * time.Millisecond)
	wall.Set(time.Hour)
	if d := j.Jumped(wall); d != 0 {
		t.Fatalf("disarmed detector reported %v", d)
	}
	wall.Set(0)
	j.Arm(Gap(wall))
	if d := j.Jumped(wall); d != 0 {
		t.Fatalf("no step, yet %v", d)
	}
	wall.Set(10 * time.Second)
	d := j.Jumped(wall)
	if d < 9*time.Second || d > 11*time.Second {
		t.Fatalf("a 10s step read as %v", d)
	}
	if err := JumpErr(d); !errors.Is(err, ErrSkewed) || !strings.Contains(err.Error(), "jumped 10s ahead") {
		t.Fatalf("JumpErr = %v", err)
	}
	wall.Set(100 * time.Millisecond) // within the threshold of the armed gap
	if d := j.Jumped(wall); d != 0 {
		t.Fatalf("a 100ms step reported as %v", d)
	}
	j.Disarm()
	wall.Set(time.Hour)
	if d := j.Jumped(wall); d != 0 {
		t.Fatalf("disarmed, yet %v", d)
	}
}

// A sample counts with every step of this node's wall clock since it was
// taken: taken an hour ahead, it says the clock agrees once the clock is set
// right, also when it is the best sample left (its peer stopped answering).
func TestEstimatesFollowTheWallClockSteps(t *testing.T) {
	e := NewEstimator(3, time.Minute)
	const gap = int64(1_000_000_000)
	hour := int64(time.Hour)
	e.Observe("a", Sample{Offset: time.Hour, Uncertainty: time.Millisecond, At: time.Second, Gap: gap + hour})
	if got := e.Estimates([]string{"a"}, 2*time.Second, gap+hour); got[0].Offset != time.Hour {
		t.Fatalf("before any step, estimate %v, want 1h", got[0].Offset)
	}
	if got := e.Estimates([]string{"a"}, 2*time.Second, gap); got[0].Offset != 0 {
		t.Fatalf("after the clock was set right, estimate %v, want 0", got[0].Offset)
	}
	if got := e.Estimates([]string{"a"}, 2*time.Second, gap-10*int64(time.Second)); got[0].Offset != -10*time.Second {
		t.Fatalf("after a further step 10 s back, estimate %v, want -10s", got[0].Offset)
	}
}
