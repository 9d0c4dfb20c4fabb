package storage

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
)

// The row cache must answer exactly what Pebble holds, through overwrites,
// stale applies, expiry conversion, GC purge, eviction and a reopen.
func TestRowCacheMatchesDisk(t *testing.T) {
	clk := clock.NewManual(epoch)
	dir := t.TempDir()
	// A tiny cache, so eviction runs constantly.
	s := openTest(t, Options{Engine: EnginePebble, Dir: dir, Clock: clk, RowCacheSize: 64 << 10, GCGrace: time.Minute, ExpiryInterval: -1})
	nowMS := clk.Now().UnixMilli()
	for i := range 2000 {
		k := fmt.Sprintf("k%d", i)
		r := val(int64(i+1), "a", strings.Repeat("v", i%50))
		if i%3 == 0 {
			r.ExpireAt = nowMS + 1000
		}
		mustApply(t, s, k, r)
		if i%5 == 0 { // a stale write that must lose
			mustApply(t, s, k, val(int64(i), "a", "stale"))
		}
	}
	clk.Advance(2 * time.Second)
	if _, err := s.ExpireAll(); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		for i := range 2000 {
			k := fmt.Sprintf("k%d", i)
			cached, found, err := s.Get([]byte(k))
			if err != nil || !found {
				t.Fatalf("%s: %v %v", k, found, err)
			}
			disk, dfound, err := pebbleOf(s).readRecord(recordKey(ring.Token([]byte(k)), []byte(k)))
			if err != nil || !dfound || record.Compare(&cached, &disk) != 0 {
				t.Fatalf("%s: cache %+v, disk %+v", k, cached, disk)
			}
			if wantDead := i%3 == 0; cached.Tombstone != wantDead {
				t.Fatalf("%s: tombstone %v, want %v", k, cached.Tombstone, wantDead)
			}
		}
	}
	check(s)
	clk.Advance(2 * time.Minute) // past gc-grace: the expired third is purged
	if _, err := s.ExpireAll(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i += 3 {
		if _, found, _ := s.Get([]byte(fmt.Sprintf("k%d", i))); found {
			t.Fatalf("k%d still found after GC", i)
		}
	}
	if pebbleOf(s).rows.evictions.Load() == 0 {
		t.Fatal("the tiny cache never evicted: the test does not exercise eviction")
	}
}

// A store that opens empty keeps every record in its row cache, so a miss
// proves absence and Pebble is not read. The proof: a record slipped into
// Pebble behind the cache's back stays invisible until a reopen loads it.
func TestRowCacheCompleteAnswersMisses(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, Options{Engine: EnginePebble, Dir: dir, ExpiryInterval: -1})
	if !s.Metrics().RowCacheComplete {
		t.Fatal("an empty store's row cache is not complete")
	}
	for i := range 500 {
		mustApply(t, s, fmt.Sprintf("k%d", i), val(int64(i+1), "a", fmt.Sprint("v", i)))
	}
	hidden := []byte("hidden")
	r := val(7, "a", "behind the cache")
	if err := pebbleOf(s).db.Set(recordKey(ring.Token(hidden), hidden), r.Encode(), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Get(hidden); err != nil || found {
		t.Fatalf("complete cache: Get(hidden) = found %v, err %v; want a miss answered without Pebble", found, err)
	}
	if !s.Metrics().RowCacheComplete {
		t.Fatal("500 small records evicted something from a 256 MiB cache")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened, the records fit, so Open loads them all, hidden included.
	s = openTest(t, Options{Engine: EnginePebble, Dir: dir, ExpiryInterval: -1})
	m := s.Metrics()
	if !m.RowCacheComplete {
		t.Fatal("reopened store that fits its row cache is not complete")
	}
	if got, ok := mustGet(t, s, "hidden"); !ok || !sameRecord(got, r) {
		t.Fatalf("after reopen: hidden = %s, %v", fmtRecord(got), ok)
	}
	for i := range 500 {
		if got, ok := mustGet(t, s, fmt.Sprintf("k%d", i)); !ok || string(got.Value) != fmt.Sprint("v", i) {
			t.Fatalf("k%d = %s, %v", i, fmtRecord(got), ok)
		}
	}
	if s.Metrics().RowCacheMisses != m.RowCacheMisses {
		t.Fatal("reads after a complete preload missed the row cache")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened with a cache too small for them, it is not complete, and a
	// miss reads Pebble.
	s = openTest(t, Options{Engine: EnginePebble, Dir: dir, ExpiryInterval: -1, RowCacheSize: 4 << 10})
	if s.Metrics().RowCacheComplete {
		t.Fatal("a 4 KiB row cache claims to hold 501 records")
	}
	for i := range 500 {
		if got, ok := mustGet(t, s, fmt.Sprintf("k%d", i)); !ok || string(got.Value) != fmt.Sprint("v", i) {
			t.Fatalf("small cache: k%d = %s, %v", i, fmtRecord(got), ok)
		}
	}
	if got, ok := mustGet(t, s, "hidden"); !ok || !sameRecord(got, r) {
		t.Fatalf("small cache: hidden = %s, %v", fmtRecord(got), ok)
	}
}

// The first eviction, or a record too large to cache, ends completeness
// before the record leaves the cache, so no read takes its absence for proof.
func TestRowCacheIncompleteAfterEviction(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value int
		count int
	}{
		{"eviction", 16, 2000}, // many small records overflow the shards
		{"oversized", 1024, 1}, // one record larger than a 256-byte shard
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 256 bytes per shard: two small records, not one of 1 KiB.
			s := openTest(t, Options{Engine: EnginePebble, Dir: t.TempDir(), ExpiryInterval: -1, RowCacheSize: 256 * rowCacheShards})
			if !s.Metrics().RowCacheComplete {
				t.Fatal("empty store not complete")
			}
			for i := range tc.count {
				mustApply(t, s, fmt.Sprintf("k%d", i), val(int64(i+1), "a", strings.Repeat("v", tc.value)))
			}
			if s.Metrics().RowCacheComplete {
				t.Fatal("still complete after a record left the cache")
			}
			for i := range tc.count {
				if got, ok := mustGet(t, s, fmt.Sprintf("k%d", i)); !ok || len(got.Value) != tc.value {
					t.Fatalf("k%d = %s, %v", i, fmtRecord(got), ok)
				}
			}
		})
	}
}

// Pebble charges its memtables to the block cache. With memtables larger
// than the configured cache, the cache held no block at all and every read
// of flushed data went to disk; the store sizes the cache to hold them too.
func TestBlockCacheHoldsBlocksBesideFullMemtables(t *testing.T) {
	s := openTest(t, Options{Engine: EnginePebble, Dir: t.TempDir(), ExpiryInterval: -1, RowCacheSize: -1,
		CacheSize: 1 << 20, MemTableSize: 4 << 20})
	value := strings.Repeat("v", 100)
	const n = 100_000 // about 15 MiB: memtables grow to their full 4 MiB
	for i := range n {
		mustApply(t, s, fmt.Sprintf("k%07d", i), val(int64(i+1), "a", value))
	}
	if err := pebbleOf(s).db.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 97 {
		if _, ok := mustGet(t, s, fmt.Sprintf("k%07d", i)); !ok {
			t.Fatalf("k%07d not found", i)
		}
	}
	if m := s.Metrics(); m.BlockCacheBytes == 0 {
		t.Fatalf("block cache holds nothing after %d reads (hits %d, misses %d)", n/97, m.BlockCacheHits, m.BlockCacheMisses)
	}
}

// Two keys can share a 64-bit token, and the row cache keys entries by token.
// The second key's entry replaces the first's, so the cache must stop
// answering misses as absences, and neither key may ever read the other's
// record.
func TestRowCacheTokenCollision(t *testing.T) {
	c := newRowCache(1 << 20)
	c.complete.Store(true)
	const token = 0xfeedface
	a, b := recordKey(token, []byte("a")), recordKey(token, []byte("b"))
	ra, rb := val(1, "n1", "value a"), val(2, "n2", "value b")
	c.put(token, a, &ra)
	if got, ok := c.get(token, a); !ok || !sameRecord(got, ra) {
		t.Fatalf("get(a) = %s, %v", fmtRecord(got), ok)
	}
	if !c.absent() {
		t.Fatal("one entry ended completeness")
	}
	c.put(token, b, &rb)
	if c.absent() {
		t.Fatal("still complete after b's entry replaced a's")
	}
	if got, ok := c.get(token, a); ok {
		t.Fatalf("get(a) after b replaced it = %s", fmtRecord(got))
	}
	if got, ok := c.get(token, b); !ok || !sameRecord(got, rb) {
		t.Fatalf("get(b) = %s, %v", fmtRecord(got), ok)
	}
	c.del(token, a) // a's delete must not drop b's entry
	if _, ok := c.get(token, b); !ok {
		t.Fatal("del(a) dropped b's entry")
	}
	c.del(token, b)
	if _, ok := c.get(token, b); ok {
		t.Fatal("del(b) left b's entry")
	}
}

// A cached record's Value must not alias the caller's buffer: Apply's
// callers reuse theirs.
func TestRowCacheCopiesValue(t *testing.T) {
	c := newRowCache(1 << 20)
	rk := recordKey(1, []byte("k"))
	r := val(1, "n1", "original")
	c.put(1, rk, &r)
	copy(r.Value, "CHANGED!")
	if got, _ := c.get(1, rk); string(got.Value) != "original" {
		t.Fatalf("cached value = %q after the caller's buffer changed", got.Value)
	}
}
