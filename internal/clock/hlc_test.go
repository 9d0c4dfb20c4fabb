package clock

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestHLCMonotonic(t *testing.T) {
	m := NewManual(time.UnixMilli(1_000_000))
	h := NewHLC(m, 500*time.Millisecond)
	a := h.Now()
	b := h.Now()
	if b <= a {
		t.Fatalf("second reading %s not after first %s", b, a)
	}
	if b.Physical() != 1_000_000 || b.Logical() != 1 {
		t.Fatalf("got %s, want 1000000.1", b)
	}
	m.Set(time.UnixMilli(999_000)) // wall clock steps back
	if c := h.Now(); c <= b {
		t.Fatalf("reading after wall step back %s not after %s", c, b)
	}
	m.Set(time.UnixMilli(2_000_000))
	if c := h.Now(); c != MakeTimestamp(2_000_000, 0) {
		t.Fatalf("after wall moved on got %s", c)
	}
}

func TestHLCUpdateSkew(t *testing.T) {
	m := NewManual(time.UnixMilli(1_000_000))
	h := NewHLC(m, 500*time.Millisecond)
	ok := MakeTimestamp(1_000_400, 3)
	if err := h.Update(ok); err != nil {
		t.Fatalf("update within skew: %v", err)
	}
	if n := h.Now(); n <= ok {
		t.Fatalf("Now %s not after observed %s", n, ok)
	}
	bad := MakeTimestamp(1_000_501, 0)
	if err := h.Update(bad); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("update past skew: err = %v", err)
	}
	if h.Last() >= bad {
		t.Fatalf("refused timestamp moved the clock to %s", h.Last())
	}
}

func TestHLCConcurrentUnique(t *testing.T) {
	h := NewHLC(System{}, 0)
	var mu sync.Mutex
	seen := map[Timestamp]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]Timestamp, 0, 1000)
			for range 1000 {
				local = append(local, h.Now())
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ts := range local {
				if seen[ts] {
					t.Errorf("duplicate timestamp %s", ts)
				}
				seen[ts] = true
			}
		}()
	}
	wg.Wait()
}

func TestOffset(t *testing.T) {
	m := NewManual(time.UnixMilli(5000))
	o := NewOffset(m, time.Second)
	if got := o.Now().UnixMilli(); got != 6000 {
		t.Fatalf("got %d", got)
	}
	o.Set(-time.Second)
	if got := o.Now().UnixMilli(); got != 4000 {
		t.Fatalf("got %d", got)
	}
}

func TestHLCRewind(t *testing.T) {
	m := NewManual(time.UnixMilli(1_000_000))
	h := NewHLC(m, 500*time.Millisecond)
	m.Advance(time.Hour) // the wall clock jumps ahead ...
	ahead := h.Now()
	m.Advance(-time.Hour) // ... and comes back
	if h.Now() <= ahead {
		t.Fatal("without a rewind the HLC must stay monotonic")
	}
	if h.Rewind(time.Hour + time.Second) {
		t.Fatal("rewound although within the limit")
	}
	if !h.Rewind(500 * time.Millisecond) {
		t.Fatal("did not rewind an hour ahead")
	}
	if n := h.Now(); n.Physical() != 1_000_000 {
		t.Fatalf("after rewind Now = %s, want the wall clock", n)
	}
}

// NowN's reservation holds n timestamps after everything returned or
// observed, and the clock goes on after the last of them.
func TestHLCNowNReserves(t *testing.T) {
	m := NewManual(time.UnixMilli(1_000_000))
	h := NewHLC(m, time.Second)
	a := h.Now()
	first := h.NowN(16)
	if first <= a {
		t.Fatalf("NowN = %s, not after Now's %s", first, a)
	}
	if next := h.Now(); next <= first+15 {
		t.Fatalf("Now after NowN(16) from %s = %s, inside the reservation", first, next)
	}
	// A fresh wall clock reading starts the reservation when it is newer.
	m.Set(time.UnixMilli(2_000_000))
	if got := h.NowN(3); got != MakeTimestamp(2_000_000, 0) {
		t.Fatalf("NowN after the wall moved on = %s, want 2000000.0", got)
	}
	// An observed remote timestamp ahead of the wall clock comes first.
	remote := MakeTimestamp(2_000_500, 7)
	h.Observe(remote)
	if got := h.NowN(2); got != remote+1 {
		t.Fatalf("NowN after observing %s = %s, want %s", remote, got, remote+1)
	}
	if h.Last() != remote+2 {
		t.Fatalf("Last after NowN(2) = %s, want %s", h.Last(), remote+2)
	}
	// Concurrent reservations never overlap.
	h2 := NewHLC(System{}, 0)
	var mu sync.Mutex
	seen := map[Timestamp]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				f := h2.NowN(5)
				mu.Lock()
				for i := range Timestamp(5) {
					if seen[f+i] {
						t.Errorf("timestamp %s reserved twice", f+i)
					}
					seen[f+i] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
