package storage

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ringkv/ringkv/internal/ring"
)

// shardToken returns a token of shard 7 whose slot bits are low: many of them
// share a probe sequence, so puts and deletes cross each other's slots and
// deleted markers.
func shardToken(i uint64) uint64 { return 7<<56 | i }

// spreadToken returns a token of shard 7 whose slot bits look random, so its
// entries spread over the whole table.
func spreadToken(i uint64) uint64 { return 7<<56 | (i*0x9e3779b97f4a7c15)>>8 }

// Random puts and deletes on tokens that collide in one shard's table agree
// with a map, through growth, deleted markers and the rebuilds that drop
// them.
func TestRowCacheTableMatchesModel(t *testing.T) {
	c := newRowCache(1 << 30) // no eviction
	model := map[uint64]string{}
	r := rand.New(rand.NewPCG(1, 2))
	for step := range 20000 {
		tok := shardToken(uint64(r.IntN(300)))
		rk := recordKey(tok, fmt.Appendf(nil, "k%d", tok))
		switch r.IntN(3) {
		case 0, 1:
			v := fmt.Sprintf("v%d", step)
			rec := val(int64(step+1), "n1", v)
			c.put(tok, rk, &rec)
			model[tok] = v
		case 2:
			c.del(tok, rk)
			delete(model, tok)
		}
		if step%1000 != 999 {
			continue
		}
		for i := range uint64(300) {
			tok := shardToken(i)
			got, ok := c.get(tok, recordKey(tok, fmt.Appendf(nil, "k%d", tok)))
			want, wantOK := model[tok]
			if ok != wantOK || (ok && string(got.Value) != want) {
				t.Fatalf("step %d, token %#x: got %q %v, want %q %v", step, tok, got.Value, ok, want, wantOK)
			}
		}
	}
	sh := c.shard(shardToken(0))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.live != len(model) {
		t.Fatalf("shard counts %d entries, model has %d", sh.live, len(model))
	}
	if n := len(sh.tab.Load().slots); (sh.live+sh.dead)*4 > n*3 {
		t.Fatalf("table of %d slots holds %d entries and %d markers: over three quarters", n, sh.live, sh.dead)
	}
}

// Readers never miss an entry that stays in the cache while a writer in the
// same shard inserts, replaces and deletes others, growing and rebuilding the
// table under them: an entry never moves within a table, and a new table is
// published whole.
func TestRowCacheReadsDuringResize(t *testing.T) {
	c := newRowCache(1 << 30)
	const stable = 64
	key := func(tok uint64) []byte { return recordKey(tok, fmt.Appendf(nil, "k%d", tok)) }
	for i := range uint64(stable) {
		rec := val(1, "n1", fmt.Sprint(i))
		c.put(spreadToken(i), key(spreadToken(i)), &rec)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for !stop.Load() {
				i := uint64(r.IntN(stable))
				got, ok := c.get(spreadToken(i), key(spreadToken(i)))
				if !ok || string(got.Value) != fmt.Sprint(i) {
					t.Errorf("stable token %d: got %q %v", i, got.Value, ok)
					stop.Store(true)
				}
			}
		})
	}
	r := rand.New(rand.NewPCG(3, 4))
	for step := range 200000 {
		tok := spreadToken(stable + uint64(r.IntN(2000)))
		if r.IntN(2) == 0 {
			rec := val(int64(step+1), "n1", "x")
			c.put(tok, key(tok), &rec)
		} else {
			c.del(tok, key(tok))
		}
		if stop.Load() {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
}

// Eviction brings a shard back within its budget and never drops the entry
// that was just written.
func TestRowCacheEvictionKeepsBudget(t *testing.T) {
	c := newRowCache(64 << 10 * rowCacheShards) // 64 KiB a shard
	c.complete.Store(true)
	var last uint64
	for i := range uint64(5000) {
		last = shardToken(i)
		rec := val(1, "n1", "a value of about sixty bytes, so that 5000 of them overflow")
		c.put(last, recordKey(last, []byte("k")), &rec)
		if _, ok := c.get(last, recordKey(last, []byte("k"))); !ok {
			t.Fatalf("entry %d gone right after its put", i)
		}
	}
	sh := c.shard(last)
	if sh.bytes > c.maxShard {
		t.Fatalf("shard holds %d bytes, budget %d", sh.bytes, c.maxShard)
	}
	if c.evictions.Load() == 0 || c.absent() {
		t.Fatalf("evictions %d, complete %v: eviction did not happen or did not end completeness", c.evictions.Load(), c.absent())
	}
}

// A prefetch is only a hint: present, deleted and missing keys, in a batch
// longer than a pipeline's, read the same after it, with or without a row
// cache.
func TestPrefetchChangesNothing(t *testing.T) {
	for _, rows := range []int64{0, -1} {
		s := openTest(t, Options{RowCacheSize: rows})
		var keys [][]byte
		for i := range 40 {
			k := fmt.Appendf(nil, "k%d", i)
			keys = append(keys, k)
			if i%4 == 3 {
				continue // never written
			}
			if _, err := s.Apply(k, val(int64(i+1), "n1", fmt.Sprint("v", i))); err != nil {
				t.Fatal(err)
			}
			if i%4 == 2 {
				if _, err := s.Apply(k, del(int64(i+2), "n1")); err != nil {
					t.Fatal(err)
				}
			}
		}
		toks := make([]uint64, len(keys))
		for i, k := range keys {
			toks[i] = ring.Token(k)
		}
		s.PrefetchTokens(nil)
		s.PrefetchTokens(toks[:1])
		s.PrefetchTokens(toks)
		for i, k := range keys {
			rec, found, err := s.Get(k)
			if err != nil {
				t.Fatal(err)
			}
			switch i % 4 {
			case 3:
				if found {
					t.Fatalf("rows %d: %s never written, found %+v", rows, k, rec)
				}
			case 2:
				if !found || !rec.Tombstone {
					t.Fatalf("rows %d: %s deleted, got %+v found %v", rows, k, rec, found)
				}
			default:
				if !found || string(rec.Value) != fmt.Sprint("v", i) {
					t.Fatalf("rows %d: %s = %q found %v", rows, k, rec.Value, found)
				}
			}
		}
	}
}
