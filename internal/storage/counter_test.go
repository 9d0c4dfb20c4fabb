package storage

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

// counterWrites returns the records three coordinators send while each
// applies incs increments of 1 to a counter born on base: every one carries
// its node's running total and the others' totals as that node last saw
// them (here: nothing), as INCR does when the nodes do not hear each other.
func counterWrites(base record.Record, incs int) []record.Record {
	var out []record.Record
	for n, node := range []string{"a", "b", "c"} {
		c, _ := record.CounterFrom(&base, true, 0)
		for i := range incs {
			if _, err := c.Add(node, 1); err != nil {
				panic(err)
			}
			r := record.Record{Version: record.Version{TS: ts(int64(10+i), uint16(n)), Node: node}}
			r.SetCounter(&c)
			out = append(out, r)
		}
	}
	return out
}

// TestApplyMergesCounters: a store merges the states of one counter in
// whatever order, and however often, they arrive, on both engines, through
// Apply and ApplyBatch, and keeps the merge across a restart.
func TestApplyMergesCounters(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		dir := t.TempDir()
		open := func() *Store {
			s, err := Open(Options{Engine: engine, Dir: dir, Sync: SyncAlways, Clock: clock.NewManual(epoch), ExpiryInterval: -1, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		}
		s := open()
		base := val(1, "a", "100")
		mustApply(t, s, "k", base)
		writes := counterWrites(base, 6)
		r := rand.New(rand.NewPCG(7, 7))
		order := append(writes, writes[:5]...) // replays change nothing
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		half := len(order) / 2
		for _, w := range order[:half] {
			mustApply(t, s, "k", w)
		}
		var ws []Write
		for _, w := range order[half:] {
			ws = append(ws, Write{Key: []byte("k"), Rec: w})
		}
		s.ApplyBatch(ws)
		for _, w := range ws {
			if w.Err != nil {
				t.Fatal(w.Err)
			}
		}
		check := func(when string) {
			got, found := mustGet(t, s, "k")
			if !found || string(got.Value) != "118" || got.Counter == nil {
				t.Fatalf("%s: k = %q (counter %t), want 118", when, got.Value, got.Counter != nil)
			}
		}
		check("merged")
		if res := mustApply(t, s, "k", writes[3]); res.Applied {
			t.Fatal("an old state of the counter was applied")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open()
		defer s.Close()
		check("after reopen")

		// A SET newer than every counter state replaces the counter; an
		// older counter state then loses to it by version.
		mustApply(t, s, "k", val(100, "b", "x"))
		if res := mustApply(t, s, "k", writes[len(writes)-1]); res.Applied {
			t.Fatal("a counter older than a SET was applied over it")
		}
		if got, _ := mustGet(t, s, "k"); string(got.Value) != "x" || got.Counter != nil {
			t.Fatalf("after SET: %q", got.Value)
		}
	})
}

// TestCounterSameVersionReplay: two merged states can share a version (the
// newest write's) and differ only in the increments of another node, as
// "9" and "10" do; a restart keeps the later, bigger one, whose value bytes
// sort first.
func TestCounterSameVersionReplay(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		dir := t.TempDir()
		open := func() *Store {
			s, err := Open(Options{Engine: engine, Dir: dir, Sync: SyncAlways, Clock: clock.NewManual(epoch), ExpiryInterval: -1, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		}
		s := open()
		c := record.Counter{}
		if _, err := c.Add("a", 9); err != nil {
			t.Fatal(err)
		}
		newest := record.Record{Version: record.Version{TS: ts(50, 0), Node: "a"}}
		newest.SetCounter(&c)
		mustApply(t, s, "k", newest)
		old := record.Counter{}
		if _, err := old.Add("b", 1); err != nil {
			t.Fatal(err)
		}
		older := record.Record{Version: record.Version{TS: ts(40, 0), Node: "b"}}
		older.SetCounter(&old)
		if res := mustApply(t, s, "k", older); !res.Applied {
			t.Fatal("b's increment was not merged in")
		}
		for _, phase := range []string{"before", "after"} {
			got, _ := mustGet(t, s, "k")
			if string(got.Value) != "10" || got.Version != newest.Version {
				t.Fatalf("%s reopen: %q at %v, want 10 at %v", phase, got.Value, got.Version, newest.Version)
			}
			if phase == "before" {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = open()
				defer s.Close()
			}
		}
	})
}

// TestExpiredCounterIsDead: a counter past its expiry is stored as a
// tombstone, with no counter state left over.
func TestExpiredCounterIsDead(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		clk := clock.NewManual(epoch)
		s := openTest(t, Options{Engine: engine, Clock: clk})
		c := record.Counter{}
		if _, err := c.Add("a", 3); err != nil {
			t.Fatal(err)
		}
		r := record.Record{Version: record.Version{TS: ts(1, 0), Node: "a"}, ExpireAt: epoch.UnixMilli() - 1}
		r.SetCounter(&c)
		mustApply(t, s, strconv.Itoa(1), r)
		got, found := mustGet(t, s, "1")
		if !found || !got.Tombstone || got.Counter != nil || got.Value != nil {
			t.Fatalf("expired counter stored as %+v", got)
		}
	})
}
