package storage

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

// epoch is the manual clock's start; any fixed instant after 1970 works.
var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openTest opens a store with the background expiry cycle off (tests drive it
// with ExpireNow) and in memory unless opts say otherwise, and closes it at
// cleanup.
func openTest(tb testing.TB, opts Options) *Store {
	tb.Helper()
	if opts.Dir == "" && opts.FS == nil {
		opts.InMemory = true
	}
	if opts.ExpiryInterval == 0 {
		opts.ExpiryInterval = -1
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(tb)
	}
	s, err := Open(opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// ts makes a version timestamp at physical ms ms after epoch.
func ts(ms int64, logical uint16) clock.Timestamp {
	return clock.MakeTimestamp(epoch.UnixMilli()+ms, logical)
}

func val(ms int64, node, v string) record.Record {
	return record.Record{Value: []byte(v), Version: record.Version{TS: ts(ms, 0), Node: node}}
}

func del(ms int64, node string) record.Record {
	return record.Record{Tombstone: true, Version: record.Version{TS: ts(ms, 0), Node: node}}
}

func withTTL(r record.Record, expireAfterEpochMS int64) record.Record {
	r.ExpireAt = epoch.UnixMilli() + expireAfterEpochMS
	return r
}

func mustApply(tb testing.TB, s *Store, key string, r record.Record) ApplyResult {
	tb.Helper()
	res, err := s.Apply([]byte(key), r)
	if err != nil {
		tb.Fatalf("Apply(%q): %v", key, err)
	}
	return res
}

func mustGet(tb testing.TB, s *Store, key string) (record.Record, bool) {
	tb.Helper()
	r, found, err := s.Get([]byte(key))
	if err != nil {
		tb.Fatalf("Get(%q): %v", key, err)
	}
	return r, found
}

func sameRecord(a, b record.Record) bool {
	return a.Version == b.Version && a.Tombstone == b.Tombstone && a.ExpireAt == b.ExpireAt && bytes.Equal(a.Value, b.Value)
}

func fmtRecord(r record.Record) string {
	return fmt.Sprintf("{v=%q ver=%s exp=%d tomb=%t}", r.Value, r.Version, r.ExpireAt, r.Tombstone)
}

// engines are the engines the conformance suite runs every test against.
var engines = []string{EngineMemory, EnginePebble}

// forEachEngine runs fn as a subtest per engine: one test body, every
// implementation of the contract.
func forEachEngine(t *testing.T, fn func(t *testing.T, engine string)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e, func(t *testing.T) { fn(t, e) })
	}
}

// pebbleOf returns the Pebble engine of a store opened with EnginePebble.
func pebbleOf(s *Store) *pebbleEngine { return s.eng.(*pebbleEngine) }

// checkIndex asserts the deadline index holds an entry for every record
// that has a deadline, at that deadline; for Pebble, which deletes an entry
// when its record changes, exactly those and nothing else.
func checkIndex(tb testing.TB, s *Store) {
	tb.Helper()
	if me, ok := s.eng.(*memEngine); ok {
		err := s.Scan(0, func(token uint64, key []byte, rec *record.Record) error {
			if dl := s.deadline(rec); dl != 0 && !me.dls.has(dl, token, key) {
				tb.Errorf("record %q has no deadline entry at %d", key, dl)
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("Scan: %v", err)
		}
		return
	}
	want := map[string]bool{}
	err := s.Scan(0, func(token uint64, key []byte, rec *record.Record) error {
		if dl := s.deadline(rec); dl != 0 {
			want[string(deadlineKey(dl, token, key))] = true
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("Scan: %v", err)
	}
	it, err := pebbleOf(s).db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixDeadline}, UpperBound: prefixEnd(prefixDeadline)})
	if err != nil {
		tb.Fatal(err)
	}
	defer it.Close()
	got := 0
	for valid := it.First(); valid; valid = it.Next() {
		got++
		if !want[string(it.Key())] {
			dl, _, key, _ := parseDeadlineKey(it.Key())
			tb.Errorf("index entry for %q at %d matches no record's deadline", key, dl)
		}
	}
	if got != len(want) {
		tb.Errorf("index has %d entries, records need %d", got, len(want))
	}
}
