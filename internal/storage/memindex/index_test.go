package memindex

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// mkey is a model entry's identity.
type mkey struct {
	tok uint64
	key string
}

// model is the naive version the index is checked against.
type model map[mkey][]byte

func (m model) sorted(from, to uint64) []mkey {
	var ks []mkey
	for k := range m {
		if k.tok >= from && (to == 0 || k.tok < to) {
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, func(a, b mkey) int {
		return cmp.Or(cmp.Compare(a.tok, b.tok), cmp.Compare(a.key, b.key))
	})
	return ks
}

// check compares every observable of ix with m.
func check(t *testing.T, ix *Index, m model) {
	t.Helper()
	var live int64
	for k, v := range m {
		got, ok := ix.Get(k.tok, []byte(k.key), nil)
		if !ok || !bytes.Equal(got, v) {
			t.Fatalf("Get(%#x, %q) = %d bytes, %v; want %d bytes", k.tok, k.key, len(got), ok, len(v))
		}
		live += int64(len(k.key) + len(v))
	}
	if n := ix.Len(); n != int64(len(m)) {
		t.Fatalf("Len = %d, want %d", n, len(m))
	}
	if n := ix.LiveBytes(); n != live {
		t.Fatalf("LiveBytes = %d, want %d", n, live)
	}
	checkRange(t, ix, m, 0, 0)
}

func checkRange(t *testing.T, ix *Index, m model, from, to uint64) {
	t.Helper()
	want := m.sorted(from, to)
	var got []mkey
	err := ix.Range(from, to, nil, func(tok uint64, key, val []byte) error {
		k := mkey{tok, string(key)}
		if mv, ok := m[k]; !ok || !bytes.Equal(mv, val) {
			return fmt.Errorf("Range gave %#x %q with %d bytes not in the model", tok, key, len(val))
		}
		got = append(got, k)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Range(%#x, %#x): %d entries, want %d (or wrong order)", from, to, len(got), len(want))
	}
}

func value(r *rand.Rand, hugeAt, chunkSize int) []byte {
	var n int
	switch p := r.IntN(100); {
	case p < 5:
		n = 0
	case p < 8:
		n = hugeAt + r.IntN(hugeAt) // a chunk of its own
	case p < 10:
		n = chunkSize + r.IntN(chunkSize) // larger than a chunk
	default:
		n = r.IntN(200)
	}
	v := make([]byte, n)
	// A random start and stride: distinct values, cheap for megabytes.
	b, d := byte(r.Uint32()), byte(r.Uint32()|1)
	for i := range v {
		v[i] = b
		b += d
	}
	return v
}

func TestModel(t *testing.T) {
	for _, opts := range []Options{{ShardBits: 1, ChunkSize: pageSize}, {ShardBits: 3, ChunkSize: 3 * pageSize}, {}} {
		t.Run(fmt.Sprintf("bits=%d,chunk=%d", opts.ShardBits, opts.ChunkSize), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(opts.ChunkSize)))
			ix := New(opts)
			defer ix.Close()
			m := model{}
			// A few tokens shared by many keys: collisions on purpose.
			shared := []uint64{7, 1 << 63, r.Uint64()}
			var keys []mkey
			for i := range 2000 {
				k := fmt.Sprintf("k%d", i)
				tok := xxhash.Sum64String(k)
				if i%10 == 0 {
					tok = shared[i%len(shared)]
				}
				keys = append(keys, mkey{tok, k})
			}
			ops := 30000
			if opts.ChunkSize == 0 {
				ops = 6000 // megabyte values: fewer operations say as much
			}
			for op := range ops {
				k := keys[r.IntN(len(keys))]
				switch p := r.IntN(10); {
				case p < 6:
					v := value(r, ix.hugeAt, ix.chunkSize)
					ix.Put(k.tok, []byte(k.key), v)
					m[k] = v
				default:
					_, want := m[k]
					if got := ix.Delete(k.tok, []byte(k.key)); got != want {
						t.Fatalf("op %d: Delete(%q) = %v, want %v", op, k.key, got, want)
					}
					delete(m, k)
				}
				if op%2000 == 1999 {
					check(t, ix, m)
				}
			}
			check(t, ix, m)
			if st := ix.Stats(); st.Compactions == 0 {
				t.Errorf("no compaction ran: %+v", st)
			}
			for k := range m {
				ix.Delete(k.tok, []byte(k.key))
				delete(m, k)
			}
			check(t, ix, m)
			if got := ix.MemoryBytes() - ix.pool.bytes.Load(); got != ix.fixed {
				t.Errorf("empty index holds %d bytes beyond its shard headers and chunk pool", got-ix.fixed)
			}
			if got, limit := ix.pool.bytes.Load(), int64(ix.pool.perSize*2*ix.chunkSize); got > limit {
				t.Errorf("chunk pool holds %d bytes, more than its bound %d", got, limit)
			}
		})
	}
}

func TestGetAppendsAndCopies(t *testing.T) {
	ix := New(Options{ShardBits: 1})
	defer ix.Close()
	ix.Put(1, []byte("a"), []byte("value"))
	ix.Put(2, []byte("empty"), nil)

	got, ok := ix.Get(1, []byte("a"), []byte("prefix:"))
	if !ok || string(got) != "prefix:value" {
		t.Fatalf("Get = %q, %v", got, ok)
	}
	got[len(got)-1] = 'X' // must not reach the index
	if got, _ := ix.Get(1, []byte("a"), nil); string(got) != "value" {
		t.Fatalf("Get after caller's write = %q", got)
	}
	if got, ok := ix.Get(2, []byte("empty"), nil); !ok || len(got) != 0 {
		t.Fatalf("Get(empty) = %q, %v; want found and empty", got, ok)
	}
	if got, ok := ix.Get(1, []byte("b"), []byte("d")); ok || string(got) != "d" {
		t.Fatalf("Get(missing) = %q, %v; want dst unchanged, not found", got, ok)
	}
	if ix.Delete(1, []byte("b")) {
		t.Fatal("Delete of a missing key reported true")
	}
	// The empty key is a key like any other, beside one sharing its token.
	ix.Put(1, nil, []byte("e"))
	if got, ok := ix.Get(1, []byte{}, nil); !ok || string(got) != "e" {
		t.Fatalf("Get(empty key) = %q, %v", got, ok)
	}
	if got, _ := ix.Get(1, []byte("a"), nil); string(got) != "value" {
		t.Fatalf("Get(a) beside the empty key = %q", got)
	}
}

func TestCollidingTokens(t *testing.T) {
	ix := New(Options{ShardBits: 1, ChunkSize: pageSize})
	defer ix.Close()
	m := model{}
	const tok = 42
	for i := range 700 { // more than a table page: the probe wraps and grows
		k := mkey{tok, fmt.Sprintf("key%03d", i)}
		m[k] = []byte(k.key + "-v")
		ix.Put(tok, []byte(k.key), m[k])
	}
	check(t, ix, m)
	for i := 0; i < 700; i += 2 {
		k := mkey{tok, fmt.Sprintf("key%03d", i)}
		if !ix.Delete(tok, []byte(k.key)) {
			t.Fatalf("Delete(%q) = false", k.key)
		}
		delete(m, k)
	}
	check(t, ix, m)
	if _, ok := ix.Get(tok, []byte("key000"), nil); ok {
		t.Fatal("deleted colliding key still found")
	}
}

func TestRangeBounds(t *testing.T) {
	const bits = 4
	ix := New(Options{ShardBits: bits, ChunkSize: pageSize})
	defer ix.Close()
	m := model{}
	step := uint64(1) << (64 - bits)
	// Entries on, just before and just after every shard boundary, and
	// at both ends of the ring.
	var toks []uint64
	for s := uint64(0); s < 1<<bits; s++ {
		b := s * step
		toks = append(toks, b, b+1, b+step/2, b+step-1)
	}
	for i, tok := range toks {
		for j := range 2 {
			k := mkey{tok, fmt.Sprintf("k%d-%d", i, j)}
			m[k] = []byte(k.key)
			ix.Put(tok, []byte(k.key), m[k])
		}
	}
	check(t, ix, m)
	max64 := ^uint64(0)
	for _, c := range []struct{ from, to uint64 }{
		{0, 0},                        // the whole ring
		{step, 0},                     // to the end
		{0, step},                     // the first shard exactly
		{step + 1, step + step/2 + 1}, // inside one shard
		{step / 2, 3*step + 1},        // across shards
		{step - 1, step + 1},          // across one boundary
		{max64 - 1, 0},                // the last tokens
		{max64, 0},                    // the last token
		{5 * step, 5 * step},          // empty
		{6 * step, 2 * step},          // from > to: empty
		{0, 1},                        // the first token
	} {
		checkRange(t, ix, m, c.from, c.to)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		a, b := toks[r.IntN(len(toks))]+uint64(r.IntN(3))-1, toks[r.IntN(len(toks))]+uint64(r.IntN(3))-1
		checkRange(t, ix, m, a, b)
	}
}

func TestRangeStopsOnError(t *testing.T) {
	ix := New(Options{ShardBits: 2})
	defer ix.Close()
	for i := range 100 {
		k := fmt.Appendf(nil, "k%d", i)
		ix.Put(xxhash.Sum64(k), k, k)
	}
	stop := errors.New("stop")
	calls := 0
	err := ix.Range(0, 0, nil, func(uint64, []byte, []byte) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 10 {
		t.Fatalf("Range = %v after %d calls; want stop after 10", err, calls)
	}
}

// countingLocker checks that Range holds hold while it reads a shard and
// releases it before calling fn.
type countingLocker struct {
	mu     sync.Mutex
	held   bool
	locked int
}

func (l *countingLocker) Lock()   { l.mu.Lock(); l.held = true; l.locked++ }
func (l *countingLocker) Unlock() { l.held = false; l.mu.Unlock() }

func TestRangeCallbackMutates(t *testing.T) {
	const bits = 3
	ix := New(Options{ShardBits: bits, ChunkSize: pageSize})
	defer ix.Close()
	m := model{}
	for i := range 500 {
		k := fmt.Sprintf("k%d", i)
		tok := xxhash.Sum64String(k)
		m[mkey{tok, k}] = []byte(k)
		ix.Put(tok, []byte(k), []byte(k))
	}
	hold := &countingLocker{}
	seen := 0
	prev := mkey{}
	err := ix.Range(0, 0, hold, func(tok uint64, key, val []byte) error {
		if hold.held {
			return errors.New("fn called with hold held")
		}
		k := mkey{tok, string(key)}
		if seen > 0 && (k.tok < prev.tok || k.tok == prev.tok && k.key <= prev.key) {
			return fmt.Errorf("out of order: %v after %v", k, prev)
		}
		prev = k
		seen++
		// Every entry seen is deleted, overwritten larger or re-put, and a
		// new key lands in the same shard: all under the shard's lock,
		// which Range must not hold.
		switch seen % 3 {
		case 0:
			if !ix.Delete(tok, key) {
				return fmt.Errorf("Delete(%q) from fn = false", key)
			}
			delete(m, k)
		case 1:
			v := bytes.Repeat(val, 20)
			ix.Put(tok, key, v)
			m[k] = v
		case 2:
			nk := mkey{tok, string(key) + "+"}
			ix.Put(nk.tok, []byte(nk.key), val)
			m[nk] = slices.Clone(val)
		}
		if _, ok := ix.Get(tok, key, nil); ok != (seen%3 != 0) {
			return fmt.Errorf("Get from fn after change: found=%v", ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != 500 {
		t.Fatalf("Range saw %d entries, want the 500 present at its start", seen)
	}
	if hold.locked != 1<<bits {
		t.Fatalf("hold taken %d times, want once per shard (%d)", hold.locked, 1<<bits)
	}
	check(t, ix, m)
}

func TestCompactionReclaims(t *testing.T) {
	ix := New(Options{ShardBits: 2, ChunkSize: 64 << 10})
	defer ix.Close()
	m := model{}
	val := bytes.Repeat([]byte("v"), 100)
	key := func(i int) mkey {
		k := fmt.Sprintf("key%07d", i)
		return mkey{xxhash.Sum64String(k), k}
	}
	const n = 20000
	for i := range n {
		k := key(i)
		ix.Put(k.tok, []byte(k.key), val)
		m[k] = val
	}
	full := ix.MemoryBytes()
	// Overwrites of the same length go in place and leave nothing dead.
	dead := ix.Stats().DeadBytes
	same := bytes.Repeat([]byte("s"), 100)
	for i := range n {
		k := key(i)
		ix.Put(k.tok, []byte(k.key), same)
		m[k] = same
	}
	check(t, ix, m)
	if st := ix.Stats(); st.DeadBytes != dead || ix.MemoryBytes() != full {
		t.Fatalf("same-length overwrites: %+v, MemoryBytes %d, want DeadBytes %d and %d", st, ix.MemoryBytes(), dead, full)
	}
	// Overwrites of another length leave the old copies dead; compaction
	// keeps the memory within about twice the live data.
	for round := range 5 {
		v := bytes.Repeat([]byte{byte('a' + round)}, 100+(round+1)%2)
		for i := range n {
			k := key(i)
			ix.Put(k.tok, []byte(k.key), v)
			m[k] = v
		}
	}
	check(t, ix, m)
	st := ix.Stats()
	if st.Compactions == 0 || st.Reclaimed == 0 {
		t.Fatalf("overwrites ran no compaction: %+v", st)
	}
	if got := ix.MemoryBytes(); got > 2*full+int64(4*pageSize) {
		t.Fatalf("after 5 overwrite rounds MemoryBytes = %d, more than twice the %d of one copy", got, full)
	}
	// Deleting nine keys in ten must give most of the memory back.
	for i := range n {
		if i%10 != 0 {
			k := key(i)
			ix.Delete(k.tok, []byte(k.key))
			delete(m, k)
		}
	}
	check(t, ix, m)
	if got := ix.MemoryBytes(); got > full/3 {
		t.Fatalf("after deleting 90%% MemoryBytes = %d, want well under the %d full", got, full)
	}
	if st := ix.Stats(); st.DeadBytes > st.LiveBytes+int64(4*ix.minDead) {
		t.Fatalf("dead bytes %d left beside %d live", st.DeadBytes, st.LiveBytes)
	}
}

func TestHugeValuesOwnChunks(t *testing.T) {
	ix := New(Options{ShardBits: 1, ChunkSize: pageSize})
	defer ix.Close()
	big := bytes.Repeat([]byte("x"), 10*pageSize)
	ix.Put(1, []byte("big"), big)
	ix.Put(2, []byte("small"), []byte("s"))
	with := ix.MemoryBytes()
	if with < int64(len(big)) {
		t.Fatalf("MemoryBytes %d does not count a %d-byte value", with, len(big))
	}
	got, ok := ix.Get(1, []byte("big"), nil)
	if !ok || !bytes.Equal(got, big) {
		t.Fatal("large value not read back")
	}
	ix.Put(1, []byte("big"), []byte("now small"))
	if got := ix.MemoryBytes(); got > with-int64(len(big)) {
		t.Fatalf("overwriting the large value left MemoryBytes at %d (was %d)", got, with)
	}
	if got, _ := ix.Get(1, []byte("big"), nil); string(got) != "now small" {
		t.Fatalf("Get = %q", got)
	}
}

func TestConcurrent(t *testing.T) {
	ix := New(Options{ShardBits: 2, ChunkSize: 2 * pageSize})
	defer ix.Close()
	const writers, keysEach, ops = 4, 200, 3000
	// A value names its key and version, so a reader can tell a torn or
	// misplaced value from a merely old one.
	mkval := func(key []byte, ver int) []byte {
		v := binary.AppendUvarint(nil, uint64(ver))
		v = append(v, key...)
		return append(v, bytes.Repeat([]byte{'p'}, ver%300)...)
	}
	okval := func(key, v []byte) bool {
		ver, n := binary.Uvarint(v)
		return n > 0 && bytes.Equal(v, mkval(key, int(ver)))
	}
	var wg, rg sync.WaitGroup
	errs := make(chan error, 2*writers+1)
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			m := map[string][]byte{}
			for op := range ops {
				k := fmt.Appendf(nil, "w%d-k%d", w, r.IntN(keysEach))
				tok := xxhash.Sum64(k)
				if r.IntN(4) == 0 {
					_, had := m[string(k)]
					if ix.Delete(tok, k) != had {
						errs <- fmt.Errorf("writer %d: Delete(%s) disagreed", w, k)
						return
					}
					delete(m, string(k))
					continue
				}
				v := mkval(k, op)
				ix.Put(tok, k, v)
				m[string(k)] = v
				if got, ok := ix.Get(tok, k, nil); !ok || !bytes.Equal(got, v) {
					errs <- fmt.Errorf("writer %d: own write of %s not read back", w, k)
					return
				}
			}
		})
	}
	for rd := range writers {
		rg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(rd), 10))
			var buf []byte
			for {
				select {
				case <-done:
					return
				default:
				}
				k := fmt.Appendf(nil, "w%d-k%d", r.IntN(writers), r.IntN(keysEach))
				if r.IntN(8) == 0 {
					// Prefetch reads tables with no lock while writers
					// replace and unmap them.
					ix.Prefetch([]uint64{xxhash.Sum64(k), r.Uint64(), 0, ^uint64(0)})
				}
				var ok bool
				buf, ok = ix.Get(xxhash.Sum64(k), k, buf[:0])
				if ok && !okval(k, buf) {
					errs <- fmt.Errorf("reader: bad value for %s", k)
					return
				}
			}
		})
	}
	rg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			var prev uint64
			err := ix.Range(0, 0, nil, func(tok uint64, key, val []byte) error {
				if tok < prev {
					return errors.New("range out of order")
				}
				prev = tok
				if !okval(key, val) {
					return fmt.Errorf("range: bad value for %s", key)
				}
				return nil
			})
			if err != nil {
				errs <- err
				return
			}
		}
	})
	// Writers finish on their own; then the readers are told to stop.
	wg.Wait()
	close(done)
	rg.Wait()
	if ix.Stats().Compactions == 0 {
		t.Error("no compaction ran under the concurrent load")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestOptions(t *testing.T) {
	ix := New(Options{})
	if len(ix.shards) != 1<<DefaultShardBits || ix.chunkSize != DefaultChunkSize {
		t.Fatalf("defaults: %d shards, %d-byte chunks", len(ix.shards), ix.chunkSize)
	}
	ix.Close()
	if ix := New(Options{ChunkSize: 5000}); ix.chunkSize != 2*pageSize {
		t.Fatalf("ChunkSize 5000 rounded to %d, want %d", ix.chunkSize, 2*pageSize)
	}
	for _, o := range []Options{{ShardBits: -1}, {ShardBits: maxShardBits + 1}, {ChunkSize: -1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", o)
				}
			}()
			New(o)
		}()
	}
}

// TestStatsAgree checks the counters the engine exports against a walk of
// the shards.
func TestStatsAgree(t *testing.T) {
	ix := New(Options{ShardBits: 2, ChunkSize: pageSize})
	defer ix.Close()
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 3000 {
		k := fmt.Appendf(nil, "k%d", r.IntN(1000))
		if i%4 == 0 {
			ix.Delete(xxhash.Sum64(k), k)
			continue
		}
		ix.Put(xxhash.Sum64(k), k, value(r, ix.hugeAt, ix.chunkSize))
	}
	st := ix.Stats()
	var entries, kv, used, live int64
	for i := range ix.shards {
		sh := &ix.shards[i]
		for _, s := range sh.mu.tab {
			if s.live() {
				_, k, v := sh.entryLocked(s.loc())
				entries++
				kv += int64(len(k) + len(v))
			}
		}
		for _, c := range sh.mu.chunks {
			if c.mem != nil && !c.huge {
				used += int64(c.used)
				live += int64(c.live)
			}
		}
	}
	if st.Entries != entries || st.Entries != ix.Len() || st.LiveBytes != kv || ix.LiveBytes() != kv {
		t.Fatalf("Stats %+v, Len %d, LiveBytes %d; walk: %d entries, %d bytes", st, ix.Len(), ix.LiveBytes(), entries, kv)
	}
	if st.DeadBytes != used-live {
		t.Fatalf("DeadBytes %d, walk: %d", st.DeadBytes, used-live)
	}
	if st.MemoryBytes != ix.MemoryBytes() || st.MappedBytes < st.MemoryBytes-ix.fixed-ix.pool.bytes.Load() {
		t.Fatalf("MemoryBytes %d (Stats %d), mapped %d", ix.MemoryBytes(), st.MemoryBytes, st.MappedBytes)
	}
}

func TestPrefetchAnyState(t *testing.T) {
	ix := New(Options{ShardBits: 1, ChunkSize: pageSize})
	toks := []uint64{0, 1, 1 << 63, ^uint64(0)}
	ix.Prefetch(toks) // empty shards: no table yet
	ix.Prefetch(nil)
	for i, tok := range toks {
		ix.Put(tok, []byte{byte(i)}, []byte("v"))
	}
	ix.Prefetch(toks)
	for i, tok := range toks {
		if got, ok := ix.Get(tok, []byte{byte(i)}, nil); !ok || string(got) != "v" {
			t.Fatalf("Get after Prefetch = %q, %v", got, ok)
		}
		ix.Delete(tok, []byte{byte(i)})
	}
	ix.Prefetch(toks) // tables given back
	ix.Close()
	ix.Prefetch(toks) // not a call the contract allows, but harmless
}

// TestOverwriteMemoryBound overwrites every key of a default index a few
// times: the dead bytes left behind must stay bounded by the live ones
// (plus a page a shard), so memory stays near twice the first load's.
func TestOverwriteMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 200K keys four times")
	}
	ix := New(Options{})
	defer ix.Close()
	const n = 200_000
	k := make([]byte, 0, 16)
	v := make([]byte, 100)
	put := func(round byte) {
		for i := range n {
			k = benchKey(k, i)
			v[0] = round
			ix.Put(xxhash.Sum64(k), k, v)
		}
	}
	put(0)
	first := ix.MemoryBytes()
	for round := range byte(3) {
		put(round + 1)
	}
	st := ix.Stats()
	bound := 2*first + int64(len(ix.shards))*pageSize + ix.pool.bytes.Load()
	t.Logf("first load %d bytes; after 3 overwrite rounds %d (dead %d, live %d, %d compactions)",
		first, st.MemoryBytes, st.DeadBytes, st.LiveBytes, st.Compactions)
	if st.MemoryBytes > bound {
		t.Fatalf("after overwrites MemoryBytes = %d, over %d (twice the first load, a page a shard, the pool)", st.MemoryBytes, bound)
	}
}
