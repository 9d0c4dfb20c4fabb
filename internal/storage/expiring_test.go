package storage

import (
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
)

// TestExpiringCountsValuesWithAnExpiry: Expiring (INFO's "expires") follows
// writes with and without a TTL, deletes, expiry and a flush's purge, and is
// counted again from the data at open.
func TestExpiringCountsValuesWithAnExpiry(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		dir := t.TempDir()
		clk := clock.NewManual(epoch)
		s := openTest(t, Options{Engine: engine, Dir: dir, Clock: clk})
		check := func(when string, want int64) {
			t.Helper()
			if got := s.Expiring(); got != want {
				t.Fatalf("%s: Expiring %d, want %d", when, got, want)
			}
		}
		mustApply(t, s, "a", withTTL(val(1, "n1", "x"), 10_000))
		mustApply(t, s, "b", withTTL(val(1, "n1", "x"), 60_000))
		mustApply(t, s, "c", val(1, "n1", "x"))
		check("two with a TTL", 2)
		mustApply(t, s, "b", withTTL(val(2, "n1", "y"), 90_000)) // a new TTL
		check("a TTL replaced", 2)
		mustApply(t, s, "c", withTTL(val(2, "n1", "y"), 90_000)) // EXPIRE on a persistent key
		check("a TTL set", 3)
		mustApply(t, s, "b", val(3, "n1", "z")) // PERSIST / SET without EX
		check("a TTL dropped", 2)
		mustApply(t, s, "c", del(3, "n1"))
		check("a key with a TTL deleted", 1)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTest(t, Options{Engine: engine, Dir: dir, Clock: clk})
		check("after reopening", 1)
		clk.Advance(20 * time.Second)
		if _, err := s.ExpireNow(); err != nil {
			t.Fatal(err)
		}
		check("after a's expiry", 0)
		mustApply(t, s, "e", withTTL(val(10, "n1", "x"), 90_000))
		check("a new key with a TTL", 1)
		if err := s.SetBarrier(ts(20, 0)); err != nil { // FLUSHALL
			t.Fatal(err)
		}
		if _, err := s.PurgeBelowBarrier(); err != nil {
			t.Fatal(err)
		}
		check("after a flush", 0)
	})
}
