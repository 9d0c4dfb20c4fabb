package storage

import (
	"fmt"
	"testing"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

// TestFlushBarrier: below the barrier a record reads as absent, a write is
// dropped whichever path brings it, the purge removes what is stored, the
// anti-entropy hook hears of each removal, and the barrier outlives a
// restart, on both engines.
func TestFlushBarrier(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		dir := t.TempDir()
		var live map[string]bool
		open := func() *Store {
			live = map[string]bool{}
			s, err := Open(Options{Engine: engine, Dir: dir, Sync: SyncAlways, Clock: clock.NewManual(epoch), ExpiryInterval: -1, Logger: testLogger(t),
				OnApply: func(_ uint64, key []byte, _, n record.Record) { live[string(key)] = !n.Version.IsZero() }})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		}
		s := open()
		for i := range 2500 {
			mustApply(t, s, fmt.Sprintf("old%d", i), val(10, "a", "v"))
		}
		mustApply(t, s, "new", val(30, "a", "v"))
		if err := s.SetBarrier(ts(20, 0)); err != nil {
			t.Fatal(err)
		}
		if _, found := mustGet(t, s, "old1"); found {
			t.Fatal("a record below the barrier reads")
		}
		if _, found := mustGet(t, s, "new"); !found {
			t.Fatal("a record above the barrier is gone")
		}
		// A late copy of a flushed write (a hint, a repair) is dropped.
		if res := mustApply(t, s, "late", val(15, "b", "v")); res.Applied {
			t.Fatal("a write below the barrier was stored")
		}
		// A write after the flush counts from nothing: an old counter is
		// not merged into a new one.
		var c record.Counter
		if _, err := c.Add("a", 5); err != nil {
			t.Fatal(err)
		}
		old := record.Record{Version: record.Version{TS: ts(12, 0), Node: "a"}}
		old.SetCounter(&c)
		s.barrier.Store(0) // store it as if before the flush
		mustApply(t, s, "ctr", old)
		s.barrier.Store(uint64(ts(20, 0)))
		var c2 record.Counter
		if _, err := c2.Add("a", 1); err != nil {
			t.Fatal(err)
		}
		after := record.Record{Version: record.Version{TS: ts(25, 0), Node: "a"}}
		after.SetCounter(&c2)
		mustApply(t, s, "ctr", after)
		if got, _ := mustGet(t, s, "ctr"); string(got.Value) != "1" {
			t.Fatalf("counter after the flush reads %q, want 1", got.Value)
		}

		n, err := s.PurgeBelowBarrier()
		if err != nil || n != 2500 {
			t.Fatalf("purged %d, %v; want 2500", n, err)
		}
		if live["old7"] {
			t.Fatal("the purge did not tell OnApply")
		}
		count := 0
		if err := s.Scan(0, func(uint64, []byte, *record.Record) error { count++; return nil }); err != nil {
			t.Fatal(err)
		}
		if count != 2 { // new, ctr
			t.Fatalf("%d records left after the purge, want 2", count)
		}
		if err := s.SetBarrier(ts(5, 0)); err != nil || s.Barrier() != ts(20, 0) {
			t.Fatalf("the barrier went down: %v %v", s.Barrier(), err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open()
		defer s.Close()
		if s.Barrier() != ts(20, 0) {
			t.Fatalf("barrier after reopen = %v", s.Barrier())
		}
		if res := mustApply(t, s, "late2", val(15, "b", "v")); res.Applied {
			t.Fatal("a write below the barrier was stored after reopen")
		}
	})
}
