package clock

import (
	"errors"
	"testing"
	"time"
)

func TestGuardRefusesTheFuture(t *testing.T) {
	m := NewManual(time.UnixMilli(1_000_000))
	g := NewGuard(m, 500*time.Millisecond)
	for _, tc := range []struct {
		name   string
		ms     int64
		refuse bool
	}{
		{"past", 900_000, false},
		{"now", 1_000_000, false},
		{"at the limit", 1_000_500, false},
		{"just past the limit", 1_000_501, true},
		{"an hour ahead", 1_000_000 + 3_600_000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := g.Refused()
			err := g.Check(MakeTimestamp(tc.ms, 7))
			if got := errors.Is(err, ErrClockSkew); got != tc.refuse {
				t.Fatalf("Check(%d) = %v, want refused=%v", tc.ms, err, tc.refuse)
			}
			if got := g.Future(MakeTimestamp(tc.ms, 7)); got != tc.refuse {
				t.Fatalf("Future(%d) = %v, want %v", tc.ms, got, tc.refuse)
			}
			want := before
			if tc.refuse {
				want++
			}
			if g.Refused() != want {
				t.Fatalf("refused count %d, want %d", g.Refused(), want)
			}
		})
	}
}

// The cached bound must follow the clock both ways: forward on its own (the
// slow path), back on Refresh.
func TestGuardFollowsTheClock(t *testing.T) {
	m := NewManual(time.UnixMilli(1_000_000))
	g := NewGuard(m, 500*time.Millisecond)
	ts := MakeTimestamp(1_010_000, 0) // 10 s ahead
	if g.Check(ts) == nil {
		t.Fatal("a version 10s ahead passed")
	}
	m.Advance(10 * time.Second)
	if err := g.Check(ts); err != nil {
		t.Fatalf("once the clock caught up: %v", err)
	}
	m.Set(time.UnixMilli(1_000_000)) // the clock steps back
	g.Refresh()
	if g.Check(ts) == nil {
		t.Fatal("after the clock stepped back and a refresh, a version 10s ahead passed")
	}
}

// A node that knows its clock runs ahead measures versions against its
// peers' time: what it stamped while ahead is refused by its own guard. One
// that knows it runs behind does not take its peers' current versions for
// the future.
func TestGuardCorrection(t *testing.T) {
	m := NewManual(time.UnixMilli(1_000_000 + 3_600_000)) // an hour ahead
	g := NewGuard(m, 500*time.Millisecond)
	own := MakeTimestamp(1_000_000+3_600_000, 0)
	if err := g.Check(own); err != nil {
		t.Fatalf("before SetCorrection: %v", err)
	}
	g.SetCorrection(time.Hour)
	if g.Check(own) == nil || !g.Future(own) {
		t.Fatal("corrected by 1h, a version stamped by the fast clock passed")
	}
	if err := g.Check(MakeTimestamp(1_000_000, 0)); err != nil {
		t.Fatalf("a version at the peers' time: %v", err)
	}

	m.Set(time.UnixMilli(1_000_000 - 3_600_000)) // an hour behind
	g.SetCorrection(0)
	peers := MakeTimestamp(1_000_000, 0)
	if !g.Future(peers) {
		t.Fatal("uncorrected, the peers' time an hour ahead passed")
	}
	g.SetCorrection(-time.Hour)
	if g.Future(peers) || g.Check(peers) != nil {
		t.Fatal("corrected by -1h, the peers' current version was refused")
	}
}

// A correction measured while the clock ran ahead follows the clock when it
// is set right again before the next measurement: a version at the peers'
// time still passes (docs/chaos.md, bug 8: a node whose clock came back
// refused every current version until its next round).
func TestGuardCorrectionFollowsAStep(t *testing.T) {
	m := NewManual(time.UnixMilli(1_000_000 + 10_000)) // 10 s ahead
	g := NewGuard(m, 500*time.Millisecond)
	g.SetCorrection(10 * time.Second)
	peers := MakeTimestamp(1_000_000, 0)
	if g.Future(peers) || g.Check(peers) != nil {
		t.Fatal("corrected by 10s, the peers' current version was refused")
	}
	m.Set(time.UnixMilli(1_000_000)) // set right; no measurement yet
	g.Refresh()
	if g.Future(peers) || g.Check(peers) != nil {
		t.Fatal("after the clock was set right, the peers' current version was refused")
	}
	if !g.Future(MakeTimestamp(1_000_000+10_000, 0)) {
		t.Fatal("after the clock was set right, a version stamped 10 s ahead passed")
	}
}

// A node alone whose wall clock stepped back further than the guard still
// accepts what its own HLC stamped; with peers, it does not.
func TestGuardAloneTrustsItsOwnHLC(t *testing.T) {
	m := NewManual(time.UnixMilli(1_000_000))
	g := NewGuard(m, 500*time.Millisecond)
	h := NewHLC(m, 500*time.Millisecond)
	g.TrustOwn(h)
	stamped := h.Now()
	m.Advance(-10 * time.Second)
	if err := g.Check(stamped); err != nil || g.Future(stamped) {
		t.Fatalf("alone, its own version after a step back: %v", err)
	}
	if g.Check(MakeTimestamp(stamped.Physical()+1000, 0)) == nil {
		t.Fatal("alone, a version past its own HLC passed")
	}
	g.SetAlone(false)
	if g.Check(stamped) == nil {
		t.Fatal("with peers, a version 10s ahead of the wall passed")
	}
}
