package memindex

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Defaults for Options' zero values.
const (
	// DefaultShardBits gives 1024 shards: enough that writers on a few
	// cores rarely meet on one lock and that a compaction copies a small
	// slice of the data (10M keys: about 1.2 MB a shard), few enough that
	// the shards' fixed cost (a table page, a chunk page) stays small next
	// to the data. 4096 shards cost 1M 100-byte records 33 MB more resident
	// memory (189 against 156 MB, redis-server 141 MB) and their replay took
	// twice as long (2.3 against 1.0 s), the cost of the extra pages.
	DefaultShardBits = 10
	// DefaultChunkSize bounds a shard's chunk, and so the unit a large
	// shard grows by.
	DefaultChunkSize = 1 << 20
)

const maxShardBits = 20

// Options configures an Index. The zero value means the defaults.
type Options struct {
	// ShardBits sets the number of shards, 1<<ShardBits, selected by the
	// token's high bits; 0 means DefaultShardBits. At most 20.
	ShardBits int
	// ChunkSize is the largest slab a shard allocates, rounded up to the
	// page size; 0 means DefaultChunkSize. An entry larger than a quarter
	// of it gets a chunk of its own.
	ChunkSize int
}

// Index maps (token, key) to value bytes. It is safe for concurrent use; see
// the package comment for what runs in parallel.
type Index struct {
	shards    []shard
	shift     uint
	chunkSize int
	// hugeAt is the entry size above which an entry gets its own chunk.
	hugeAt int
	// minDead is the floor of dead bytes below which a shard does not
	// compact: a nearly empty shard would otherwise copy its few entries
	// after every other overwrite. A page: every shard may hold this
	// much dead, 4 MiB over 1024 shards.
	minDead int
	fixed   int64

	pool        chunkPool
	compactions atomic.Int64
	reclaimed   atomic.Int64
}

// Stats describes an Index beyond its size: the work and effect of
// compaction, for metrics.
type Stats struct {
	Entries     int64
	LiveBytes   int64 // key and value bytes of live entries
	MemoryBytes int64 // as MemoryBytes
	MappedBytes int64 // chunk and table bytes mapped, touched or not
	DeadBytes   int64 // bytes of dead entries still held in chunks
	Chunks      int64
	Compactions int64 // shard compactions run
	Reclaimed   int64 // dead bytes dropped by compactions and chunk unmaps
}

// New returns an empty Index. It panics on Options out of range, a
// programmer's error.
func New(opts Options) *Index {
	bits := opts.ShardBits
	if bits == 0 {
		bits = DefaultShardBits
	}
	if bits < 0 || bits > maxShardBits {
		panic(fmt.Sprintf("memindex: ShardBits %d out of range [1, %d]", opts.ShardBits, maxShardBits))
	}
	cs := opts.ChunkSize
	if cs == 0 {
		cs = DefaultChunkSize
	}
	if cs < 0 || cs > 1<<30 {
		panic(fmt.Sprintf("memindex: ChunkSize %d out of range", opts.ChunkSize))
	}
	cs = roundPage(cs)
	ix := &Index{
		shards:    make([]shard, 1<<bits),
		shift:     uint(64 - bits),
		chunkSize: cs,
		hugeAt:    cs / 4,
		minDead:   pageSize,
	}
	ix.pool.perSize = min(poolPerSize, max(1, len(ix.shards)/8))
	ix.fixed = int64(len(ix.shards)) * int64(unsafe.Sizeof(shard{}))
	for i := range ix.shards {
		ix.shards[i].mu.cur = -1
		ix.shards[i].emptyChunksLocked()
	}
	return ix
}

func (ix *Index) shardOf(token uint64) *shard { return &ix.shards[token>>ix.shift] }

// Get appends a copy of the value stored for (token, key) to dst; when
// there is none it returns dst unchanged and false. It holds the shard's
// read lock for one table probe and the copy.
func (ix *Index) Get(token uint64, key, dst []byte) (val []byte, found bool) {
	sh := ix.shardOf(token)
	sh.mu.RLock()
	if i := sh.findLocked(token, key); i >= 0 {
		_, _, v := sh.entryLocked(sh.mu.tab[i].loc())
		dst = append(dst, v...)
		found = true
	}
	sh.mu.RUnlock()
	return dst, found
}

// View calls fn with the value stored for (token, key), under the shard's
// read lock, and reports whether there was one; fn must not keep val nor
// call the Index. It is Get without the copy, for a caller that needs a
// few bytes of the value (the engine's record header before a write).
func (ix *Index) View(token uint64, key []byte, fn func(val []byte)) bool {
	sh := ix.shardOf(token)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i := sh.findLocked(token, key)
	if i < 0 {
		return false
	}
	_, _, v := sh.entryLocked(sh.mu.tab[i].loc())
	fn(v)
	return true
}

// Put stores val for (token, key), replacing any value; it copies key and
// val. It may compact the shard, under the shard's lock only.
func (ix *Index) Put(token uint64, key, val []byte) {
	sh := ix.shardOf(token)
	sh.mu.Lock()
	sh.putLocked(ix, token, key, val)
	sh.publishLocked()
	sh.mu.Unlock()
}

// Delete removes (token, key); it reports whether it was there.
func (ix *Index) Delete(token uint64, key []byte) bool {
	sh := ix.shardOf(token)
	sh.mu.Lock()
	ok := sh.deleteLocked(ix, token, key)
	if ok {
		sh.publishLocked()
	}
	sh.mu.Unlock()
	return ok
}

// Len returns the number of entries.
func (ix *Index) Len() int64 {
	var n int64
	for i := range ix.shards {
		n += ix.shards[i].count.Load()
	}
	return n
}

// LiveBytes returns the key and value bytes of the live entries.
func (ix *Index) LiveBytes() int64 {
	var n int64
	for i := range ix.shards {
		n += ix.shards[i].kvBytes.Load()
	}
	return n
}

// MemoryBytes returns the memory the index holds: the pages of its chunks
// that were ever written (live and dead entries alike), its tables and its
// shard headers. A chunk's never-written tail is mapped but not backed by
// memory, so it is left out; Stats.MappedBytes counts it.
func (ix *Index) MemoryBytes() int64 {
	n := ix.fixed + ix.pool.bytes.Load()
	for i := range ix.shards {
		n += ix.shards[i].memBytes.Load()
	}
	return n
}

// Stats returns sizes and compaction counters. Each shard is read at a
// different instant, so under writes the figures are approximate.
func (ix *Index) Stats() Stats {
	st := Stats{
		Compactions: ix.compactions.Load(),
		Reclaimed:   ix.reclaimed.Load(),
		MemoryBytes: ix.fixed + ix.pool.bytes.Load(),
	}
	for i := range ix.shards {
		sh := &ix.shards[i]
		sh.mu.RLock()
		st.Entries += int64(sh.mu.live)
		st.LiveBytes += sh.kvBytes.Load()
		st.MemoryBytes += sh.memBytes.Load()
		st.MappedBytes += int64(sh.mu.mappedAll + len(sh.mu.tab)*slotBytes)
		st.DeadBytes += int64(sh.mu.usedN - sh.mu.liveN)
		for _, c := range sh.mu.chunks {
			if c.mem != nil {
				st.Chunks++
			}
		}
		sh.mu.RUnlock()
	}
	return st
}

// Prefetch is a hint that the entries of tokens are about to be read: it
// starts their cache misses together, where reads one after another wait
// out each in turn. The slots are fetched first with no lock (a prefetch
// cannot fault on a table a writer just unmapped); then, under each shard's
// read lock, the entries of the slots that were found. The lock's atomic
// instruction waits for earlier loads but not for prefetches, so the entry
// misses still overlap.
func (ix *Index) Prefetch(tokens []uint64) {
	for _, t := range tokens {
		sh := ix.shardOf(t)
		if n := sh.tabLen.Load(); n > 0 {
			prefetch(sh.tabAddr.Load() + uintptr(home(t, int(n)))*slotBytes)
		}
	}
	for _, t := range tokens {
		sh := ix.shardOf(t)
		sh.mu.RLock()
		if n := len(sh.mu.tab); n > 0 {
			// The first slot with t's tag, within the cache line or so
			// that the first pass brought in.
			for i, k := home(t, n), 0; k < 8; k++ {
				s := sh.mu.tab[i]
				if s == locEmpty {
					break
				}
				if s.live() && s.tagIs(t) {
					c := &sh.mu.chunks[locChunk(s.loc())]
					prefetch(uintptr(unsafe.Pointer(unsafe.SliceData(c.mem))) + uintptr(locOff(s.loc())))
					break
				}
				if i++; i == n {
					i = 0
				}
			}
		}
		sh.mu.RUnlock()
	}
}

// Close unmaps the chunks and tables. No call may follow.
func (ix *Index) Close() {
	for i := range ix.shards {
		sh := &ix.shards[i]
		sh.mu.Lock()
		sh.resetLocked(ix)
		sh.publishLocked()
		sh.mu.Unlock()
	}
	ix.pool.drain()
}
