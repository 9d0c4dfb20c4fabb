package replication

import (
	"strings"
	"testing"
	"time"
)

// Status is GET /v1/clock's body: a node an hour ahead reports itself skewed
// against both peers, with the thresholds; a healthy peer reports the
// versions from the future its guard refused.
func TestClockStatus(t *testing.T) {
	nodes := newGuardedCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]
	if st := n1.check.Status(); st.Skewed || st.Peers == nil || len(st.Peers) != 0 || st.Error != "" {
		t.Fatalf("before a round: %+v, want not skewed with an empty peer list", st)
	}
	n1.wall.Set(time.Hour)
	if err := put(t, n1.coord, "k", "from-the-future", Quorum); err == nil {
		t.Fatal("a QUORUM write stamped an hour ahead was acknowledged")
	}
	rounds(t, nodes)

	st := n1.check.Status()
	if !st.Skewed || !strings.Contains(st.Error, "ahead of its peers") {
		t.Fatalf("skewed node: %+v", st)
	}
	if d := st.OffsetMS - time.Hour.Milliseconds(); d < -1000 || d > 1000 {
		t.Fatalf("offset %d ms, want about an hour", st.OffsetMS)
	}
	if st.ThresholdMS != 400 || st.MaxClockSkewMS != 500 {
		t.Fatalf("thresholds %d/%d ms, want 80%% of and the 500 ms guard", st.ThresholdMS, st.MaxClockSkewMS)
	}
	if len(st.Peers) != 2 || st.Peers[0].UncertaintyMS < 1 {
		t.Fatalf("peers %+v, want two, each with an uncertainty of at least 1 ms (rounded up)", st.Peers)
	}
	if st := n2.check.Status(); st.Skewed || st.GuardRefused == 0 {
		t.Fatalf("healthy peer: %+v, want not skewed, with the refused version counted", st)
	}
}
