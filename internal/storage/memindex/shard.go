package memindex

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"
)

const (
	pageSize  = 4096
	slotBytes = 8
	// minSlots fills one page: tables are mapped in pages.
	minSlots = pageSize / slotBytes

	// A location is (chunk number + 1) << offBits | offset: 32 bits of
	// offset within a chunk of at most 4 GiB (a large entry's own chunk
	// can be larger: its entry is at offset 0), 16 bits of chunk number.
	// The +1 keeps the two markers below apart from every location.
	offBits   = 32
	offMask   = 1<<offBits - 1
	locBits   = 48
	locMask   = 1<<locBits - 1
	maxChunks = 1<<(locBits-offBits) - 2

	locEmpty = 0 // a slot never used since the table was built
	locTomb  = 1 // a deleted slot: probes go on past it

	tokBytes = 8 // an entry starts with its token
)

// slot is one table slot: the low 16 bits of the entry's token above its
// location, or a marker. The token itself is the first 8 bytes of the
// entry, so a slot is 8 bytes where (token, location) took 16: at 1M
// entries in 4096 shards, 33 bytes of table per entry became 17, for one
// more read of the entry's first cache line when a table is rebuilt. The
// 16-bit tag keeps a probe from reading the entries of the slots it passes:
// one in 65536 matches the tag by chance.
type slot uint64

func mkSlot(tok, loc uint64) slot { return slot(tok<<locBits | loc) }

func (s slot) loc() uint64 { return uint64(s) & locMask }

// live reports whether s holds an entry, not a marker.
func (s slot) live() bool { return s > locTomb }

func (s slot) tagIs(tok uint64) bool { return uint64(s)>>locBits == tok&(1<<(64-locBits)-1) }

// chunk is a slab of entries, filled from the start.
type chunk struct {
	mem []byte // nil: a hole left by an unmapped chunk
	// used counts the bytes handed out, dead ones included, plus a tail
	// given up when the chunk was retired.
	used int
	// touched is the high-water mark of the bytes written: the pages
	// the kernel has backed with memory.
	touched int
	live    int  // bytes of the live entries in the chunk
	huge    bool // holds one large entry
}

// shardBody is one partition of the index. Its fields under mu change only
// with mu held exclusively; the atomics copy the sizes for lock-free totals.
type shardBody struct {
	mu struct {
		// What a Get reads comes first: the lock, the table, the chunk
		// list and the first chunk, held inline so that a shard of one
		// chunk (up to ChunkSize of data: every shard up to about 10M
		// entries) costs a lookup no cache miss between slot and entry.
		sync.RWMutex
		tab    []slot
		chunks []chunk // sh.mu.inline[:] until a second chunk is mapped
		inline [1]chunk
		live   int   // slots holding an entry
		tombs  int   // slots marked locTomb
		holes  []int // indices of unmapped chunks, reused first
		// cur is the shared chunk new entries go to, or -1.
		cur int
		// Bytes of the shared (not huge) chunks: mapped, handed out, and
		// held by live entries. usedN-liveN is the dead bytes compaction
		// can reclaim.
		mappedN, usedN, liveN int
		mappedAll             int   // all chunks mapped, huge included
		kv                    int64 // key and value bytes of live entries
		mem                   int64 // see MemoryBytes
	}
	count    atomic.Int64
	kvBytes  atomic.Int64
	memBytes atomic.Int64
	// The table's address and length for Prefetch, which reads no slot
	// and so needs no lock; the two may disagree for a moment.
	tabAddr atomic.Uintptr
	tabLen  atomic.Int64
}

// shard pads shardBody to whole cache lines: the shards' array is a large
// allocation, page-aligned, so each shard starts a line and a Get's first
// reads share one or two.
type shard struct {
	shardBody
	_ [(64 - unsafe.Sizeof(shardBody{})%64) % 64]byte
}

// emptyChunksLocked points the chunk list at the inline chunk, empty.
func (sh *shard) emptyChunksLocked() {
	sh.mu.inline[0] = chunk{}
	sh.mu.chunks = sh.mu.inline[:0:1]
}

// setTabLocked installs tab as the shard's table.
func (sh *shard) setTabLocked(tab []slot) {
	sh.mu.tab = tab
	sh.tabAddr.Store(uintptr(unsafe.Pointer(unsafe.SliceData(tab))))
	sh.tabLen.Store(int64(len(tab)))
}

func mkLoc(ci, off int) uint64 { return uint64(ci+1)<<offBits | uint64(off) }
func locChunk(loc uint64) int  { return int(loc>>offBits) - 1 }
func locOff(loc uint64) int    { return int(loc & offMask) }

// home is token's first slot in a table of n slots. The token is mixed
// first: tokens that are not hashes (tests, raw keyspaces) would otherwise
// pile into neighbouring slots. The multiply-shift maps to [0, n) without
// a power-of-two size, so tables grow by pages, not doubling.
func home(tok uint64, n int) int {
	return int(((tok * 0x9E3779B97F4A7C15) >> 32) * uint64(n) >> 32)
}

func uvarintLen(x int) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func entrySize(kl, vl int) int { return tokBytes + uvarintLen(kl) + uvarintLen(vl) + kl + vl }

func roundPage(n int) int { return (n + pageSize - 1) &^ (pageSize - 1) }

func pow2ceil(n int) int { return 1 << bits.Len(uint(n-1)) }

// slotsFor sizes a table for live entries at most half full, so that it
// takes half as many inserts again before it must grow (at three quarters).
func slotsFor(live int) int {
	return max(minSlots, (2*live+minSlots-1)/minSlots*minSlots)
}

// header decodes an entry's key and value lengths and returns the size of
// the header that holds them.
func header(p []byte) (kl, vl, n int) {
	// Keys and values under 128 bytes, most of them, take the fast path.
	if len(p) >= 2 && p[0] < 0x80 && p[1] < 0x80 {
		return int(p[0]), int(p[1]), 2
	}
	k, n1 := binary.Uvarint(p)
	v, n2 := binary.Uvarint(p[n1:])
	return int(k), int(v), n1 + n2
}

// entryLocked returns the token, key and value stored at loc.
func (sh *shard) entryLocked(loc uint64) (tok uint64, k, v []byte) {
	p := sh.mu.chunks[locChunk(loc)].mem[locOff(loc):]
	tok = binary.LittleEndian.Uint64(p)
	kl, vl, n := header(p[tokBytes:])
	p = p[tokBytes+n:]
	return tok, p[:kl:kl], p[kl : kl+vl : kl+vl]
}

// tokenLocked returns the token of the entry at loc.
func (sh *shard) tokenLocked(loc uint64) uint64 {
	return binary.LittleEndian.Uint64(sh.mu.chunks[locChunk(loc)].mem[locOff(loc):])
}

// isLocked reports whether slot s holds (tok, key).
func (sh *shard) isLocked(s slot, tok uint64, key []byte) bool {
	if !s.live() || !s.tagIs(tok) {
		return false
	}
	t, k, _ := sh.entryLocked(s.loc())
	return t == tok && bytes.Equal(k, key)
}

// findLocked returns the slot of (tok, key), or -1.
func (sh *shard) findLocked(tok uint64, key []byte) int {
	t := sh.mu.tab
	n := len(t)
	if n == 0 {
		return -1
	}
	for i := home(tok, n); ; {
		s := t[i]
		if s == locEmpty {
			return -1
		}
		if sh.isLocked(s, tok, key) {
			return i
		}
		if i++; i == n {
			i = 0
		}
	}
}

// findFreeLocked returns the slot of (tok, key) or -1, and the first slot
// of its probe sequence an insert may take.
func (sh *shard) findFreeLocked(tok uint64, key []byte) (at, free int) {
	t := sh.mu.tab
	n := len(t)
	free = -1
	for i := home(tok, n); ; {
		s := t[i]
		switch {
		case s == locEmpty:
			if free < 0 {
				free = i
			}
			return -1, free
		case s == locTomb:
			if free < 0 {
				free = i
			}
		case sh.isLocked(s, tok, key):
			return i, free
		}
		if i++; i == n {
			i = 0
		}
	}
}

func (sh *shard) putLocked(ix *Index, tok uint64, key, val []byte) {
	sz := entrySize(len(key), len(val))
	// A value replaced by one of the same length (a counter, a fixed-size
	// record: most overwrites) is written over in place: no new space, no
	// dead entry for compaction to copy around later. Readers hold the
	// shard's lock, and the key and header stay byte for byte the same.
	if at := sh.findLocked(tok, key); at >= 0 {
		if _, _, old := sh.entryLocked(sh.mu.tab[at].loc()); len(old) == len(val) {
			copy(old, val)
			return
		}
	}
	// Space first: allocating can compact, which rebuilds the table, so
	// slot positions are looked up only afterwards.
	loc := sh.allocLocked(ix, sz)
	ci := locChunk(loc)
	c := &sh.mu.chunks[ci]
	p := c.mem[locOff(loc) : locOff(loc)+sz]
	binary.LittleEndian.PutUint64(p, tok)
	n := tokBytes
	n += binary.PutUvarint(p[n:], uint64(len(key)))
	n += binary.PutUvarint(p[n:], uint64(len(val)))
	n += copy(p[n:], key)
	copy(p[n:], val)
	// Counted live before the old entry is dropped: dropping the last
	// live entry of the current chunk rewinds it.
	c.live += sz
	if !c.huge {
		sh.mu.liveN += sz
	}
	sh.mu.kv += int64(len(key) + len(val))

	sh.reserveLocked()
	at, free := sh.findFreeLocked(tok, key)
	if at >= 0 {
		old := sh.mu.tab[at].loc()
		sh.mu.tab[at] = mkSlot(tok, loc)
		sh.dropLocked(ix, old)
	} else {
		if sh.mu.tab[free] == locTomb {
			sh.mu.tombs--
		}
		sh.mu.tab[free] = mkSlot(tok, loc)
		sh.mu.live++
	}
	sh.maybeCompactLocked(ix)
}

func (sh *shard) deleteLocked(ix *Index, tok uint64, key []byte) bool {
	i := sh.findLocked(tok, key)
	if i < 0 {
		return false
	}
	t := sh.mu.tab
	n := len(t)
	loc := t[i].loc()
	// A slot followed by an empty one ends every probe that reaches it,
	// so it can be emptied instead of marked, and so can the markers
	// before it: fewer markers, fewer table rebuilds.
	if t[(i+1)%n] == locEmpty {
		t[i] = locEmpty
		for j := (i + n - 1) % n; t[j] == locTomb; j = (j + n - 1) % n {
			t[j] = locEmpty
			sh.mu.tombs--
		}
	} else {
		t[i] = locTomb
		sh.mu.tombs++
	}
	sh.mu.live--
	sh.dropLocked(ix, loc)
	if sh.mu.live == 0 {
		// An empty shard gives everything back: after a range moves to
		// another node its shards would otherwise keep their chunks.
		ix.reclaimed.Add(int64(sh.mu.usedN))
		sh.resetLocked(ix)
		return true
	}
	sh.maybeCompactLocked(ix)
	return true
}

// dropLocked accounts for the death of the entry at loc, whose slot no
// longer refers to it, and unmaps or rewinds its chunk if it was the
// chunk's last live entry.
func (sh *shard) dropLocked(ix *Index, loc uint64) {
	_, k, v := sh.entryLocked(loc)
	sz := entrySize(len(k), len(v))
	sh.mu.kv -= int64(len(k) + len(v))
	ci := locChunk(loc)
	c := &sh.mu.chunks[ci]
	c.live -= sz
	if !c.huge {
		sh.mu.liveN -= sz
	}
	if c.live > 0 {
		return
	}
	if ci == sh.mu.cur {
		// Nothing in it is live: start it over. Its pages stay touched.
		sh.mu.usedN -= c.used
		ix.reclaimed.Add(int64(c.used))
		c.used = 0
		return
	}
	sh.freeChunkLocked(ix, ci)
}

func (sh *shard) newChunkLocked(ix *Index, size int, huge bool) int {
	c := chunk{huge: huge}
	if pc, ok := ix.getPooled(size, huge); ok {
		c.mem, c.touched = pc.mem, pc.touched
		sh.mu.mem += int64(roundPage(c.touched))
	}
	if c.mem == nil {
		c.mem = mapBytes(size)
	}
	var ci int
	if n := len(sh.mu.holes); n > 0 {
		ci = sh.mu.holes[n-1]
		sh.mu.holes = sh.mu.holes[:n-1]
		sh.mu.chunks[ci] = c
	} else {
		ci = len(sh.mu.chunks)
		if ci >= maxChunks {
			panic(fmt.Sprintf("memindex: a shard reached %d chunks", ci))
		}
		sh.mu.chunks = append(sh.mu.chunks, c)
		if ci == 1 && &sh.mu.chunks[0] != &sh.mu.inline[0] {
			// The list moved to the heap: drop the inline copy, which
			// on the heap allocator would keep its chunk alive.
			sh.mu.inline[0] = chunk{}
		}
	}
	sh.mu.mappedAll += size
	if !huge {
		sh.mu.mappedN += size
	}
	return ci
}

// freeChunkLocked unmaps chunk ci, which holds no live entry.
func (sh *shard) freeChunkLocked(ix *Index, ci int) {
	c := &sh.mu.chunks[ci]
	ix.releaseChunk(c)
	ix.reclaimed.Add(int64(c.used))
	sh.mu.mappedAll -= len(c.mem)
	sh.mu.mem -= int64(roundPage(c.touched))
	if !c.huge {
		sh.mu.mappedN -= len(c.mem)
		sh.mu.usedN -= c.used
	}
	*c = chunk{}
	sh.mu.holes = append(sh.mu.holes, ci)
}

// bumpLocked hands out sz bytes at the end of chunk ci, which has room.
func (sh *shard) bumpLocked(ci, sz int) uint64 {
	c := &sh.mu.chunks[ci]
	off := c.used
	c.used += sz
	if !c.huge {
		sh.mu.usedN += sz
	}
	if c.used > c.touched {
		sh.mu.mem += int64(roundPage(c.used) - roundPage(c.touched))
		c.touched = c.used
	}
	return mkLoc(ci, off)
}

func (sh *shard) tryBumpLocked(sz int) (uint64, bool) {
	if cur := sh.mu.cur; cur >= 0 && sh.mu.chunks[cur].used+sz <= len(sh.mu.chunks[cur].mem) {
		return sh.bumpLocked(cur, sz), true
	}
	return 0, false
}

// retireCurLocked stops filling the current chunk; its unused tail counts
// as dead, for compaction to reclaim.
func (sh *shard) retireCurLocked(ix *Index) {
	ci := sh.mu.cur
	if ci < 0 {
		return
	}
	sh.mu.cur = -1
	c := &sh.mu.chunks[ci]
	tail := len(c.mem) - c.used
	c.used += tail
	sh.mu.usedN += tail
	if c.live == 0 {
		sh.freeChunkLocked(ix, ci)
	}
}

// allocLocked reserves sz bytes for a new entry and returns their location.
func (sh *shard) allocLocked(ix *Index, sz int) uint64 {
	if sz > ix.hugeAt {
		return sh.bumpLocked(sh.newChunkLocked(ix, roundPage(sz), true), sz)
	}
	if loc, ok := sh.tryBumpLocked(sz); ok {
		return loc
	}
	// A shard smaller than one chunk grows by compacting into a larger
	// chunk; a larger one compacts only when mostly dead, and otherwise
	// adds a chunk.
	if dead := sh.mu.usedN - sh.mu.liveN; sh.mu.mappedN < ix.chunkSize || dead > sh.mu.liveN && dead >= ix.minDead {
		sh.compactLocked(ix, sz)
		if loc, ok := sh.tryBumpLocked(sz); ok {
			return loc
		}
	}
	sh.retireCurLocked(ix)
	sh.mu.cur = sh.newChunkLocked(ix, ix.chunkSize, false)
	return sh.bumpLocked(sh.mu.cur, sz)
}

func (sh *shard) maybeCompactLocked(ix *Index) {
	if dead := sh.mu.usedN - sh.mu.liveN; dead > sh.mu.liveN && dead >= ix.minDead {
		sh.compactLocked(ix, 0)
	}
}

// compactLocked copies the live entries of the shared chunks into fresh
// ones with room for need more bytes and gives the old chunks to the pool.
// Large entries keep their chunks. The table keeps its slots, with new
// locations, unless it needs a rebuild anyway.
func (sh *shard) compactLocked(ix *Index, need int) {
	// A shard smaller than a chunk grows by compacting into a larger one.
	// Off the heap the chunk can be generous: its untouched tail costs
	// address space, not memory, and each growth step costs a copy and an
	// munmap whose TLB shootdown was the largest syscall cost of loading
	// 1M keys. On the heap every byte of it is allocated.
	growth := 2
	if mapsOffHeap {
		growth = 4
	}

	oldChunks, oldTab := sh.mu.chunks, sh.mu.tab
	oldMapped, oldDead := sh.mu.mappedN, sh.mu.usedN-sh.mu.liveN
	if cap(oldChunks) > 0 && &oldChunks[:1][0] == &sh.mu.inline[0] {
		// The new list starts in the same inline slot.
		oldChunks = append([]chunk(nil), oldChunks...)
	}

	size := ix.chunkSize
	if total := sh.mu.liveN + need; growth*total < ix.chunkSize {
		size = min(ix.chunkSize, max(pageSize, pow2ceil(growth*total)))
	}
	sh.emptyChunksLocked()
	sh.mu.holes = nil
	sh.mu.mappedN, sh.mu.usedN, sh.mu.liveN, sh.mu.mappedAll = 0, 0, 0, 0
	remap := make([]int, len(oldChunks))
	for i, c := range oldChunks {
		if c.mem != nil && c.huge {
			remap[i] = len(sh.mu.chunks)
			sh.mu.chunks = append(sh.mu.chunks, c)
			sh.mu.mappedAll += len(c.mem)
		}
	}
	sh.mu.cur = sh.newChunkLocked(ix, size, false)

	// The table is rebuilt only when markers or its size call for it:
	// otherwise each slot just gets its entry's new location, sparing a
	// table mapping and a rehash per compaction.
	tab := oldTab
	want := slotsFor(sh.mu.live + 1)
	rebuild := sh.mu.tombs*8 > len(oldTab) || len(oldTab) > 2*want || (sh.mu.live+1)*4 > len(oldTab)*3
	if rebuild {
		tab = mapSlots(want)
	}
	n := len(tab)
	for j := range oldTab {
		s := oldTab[j]
		if !s.live() {
			continue
		}
		ci := locChunk(s.loc())
		loc := mkLoc(remap[ci], locOff(s.loc()))
		if oc := &oldChunks[ci]; !oc.huge {
			p := oc.mem[locOff(s.loc()):]
			kl, vl, hn := header(p[tokBytes:])
			sz := tokBytes + hn + kl + vl
			if c := &sh.mu.chunks[sh.mu.cur]; c.used+sz > len(c.mem) {
				sh.retireCurLocked(ix)
				sh.mu.cur = sh.newChunkLocked(ix, ix.chunkSize, false)
			}
			loc = sh.bumpLocked(sh.mu.cur, sz)
			c := &sh.mu.chunks[sh.mu.cur]
			copy(c.mem[locOff(loc):], p[:sz])
			c.live += sz
			sh.mu.liveN += sz
		}
		// The tag bits of the old slot stay: the token did not change.
		ns := s&^locMask | slot(loc)
		if !rebuild {
			oldTab[j] = ns
			continue
		}
		i := home(sh.tokenLocked(loc), n)
		for tab[i] != locEmpty {
			if i++; i == n {
				i = 0
			}
		}
		tab[i] = ns
	}

	for i := range oldChunks {
		if c := &oldChunks[i]; c.mem != nil && !c.huge {
			ix.releaseChunk(c)
		}
	}
	if rebuild {
		if oldTab != nil {
			unmapSlots(oldTab)
		}
		sh.mu.tombs = 0
	}
	sh.setTabLocked(tab)
	sh.mu.mem = int64(len(tab) * slotBytes)
	for _, c := range sh.mu.chunks {
		sh.mu.mem += int64(roundPage(c.touched))
	}
	if oldMapped > 0 {
		ix.compactions.Add(1)
		ix.reclaimed.Add(int64(oldDead))
	}
}

// reserveLocked makes room in the table for one more entry, at most three
// quarters full counting the deletion markers, which a rebuild drops.
func (sh *shard) reserveLocked() {
	n := len(sh.mu.tab)
	if n > 0 && (sh.mu.live+sh.mu.tombs+1)*4 <= n*3 {
		return
	}
	old := sh.mu.tab
	tab := mapSlots(slotsFor(sh.mu.live + 1))
	n = len(tab)
	for _, s := range old {
		if !s.live() {
			continue
		}
		i := home(sh.tokenLocked(s.loc()), n)
		for tab[i] != locEmpty {
			if i++; i == n {
				i = 0
			}
		}
		tab[i] = s
	}
	if old != nil {
		unmapSlots(old)
	}
	sh.setTabLocked(tab)
	sh.mu.tombs = 0
	sh.mu.mem += int64((len(tab) - len(old)) * slotBytes)
}

// resetLocked unmaps everything the shard holds and empties it.
func (sh *shard) resetLocked(ix *Index) {
	for i := range sh.mu.chunks {
		if c := &sh.mu.chunks[i]; c.mem != nil {
			ix.releaseChunk(c)
		}
	}
	if sh.mu.tab != nil {
		unmapSlots(sh.mu.tab)
	}
	mu := &sh.mu
	sh.setTabLocked(nil)
	sh.emptyChunksLocked()
	mu.holes = nil
	mu.live, mu.tombs, mu.cur = 0, 0, -1
	mu.mappedN, mu.usedN, mu.liveN, mu.mappedAll = 0, 0, 0, 0
	mu.kv, mu.mem = 0, 0
}

func (ix *Index) getPooled(size int, huge bool) (pooled, bool) {
	if huge {
		return pooled{}, false
	}
	return ix.pool.get(size)
}

// releaseChunk pools a shared chunk or unmaps a large entry's.
func (ix *Index) releaseChunk(c *chunk) {
	if c.huge {
		unmapBytes(c.mem)
		return
	}
	ix.pool.put(pooled{mem: c.mem, touched: c.touched})
}

func (sh *shard) publishLocked() {
	// An atomic store is a locked instruction on amd64; a load is not. Most
	// puts change nothing here (an overwrite in place) or one figure.
	if v := int64(sh.mu.live); sh.count.Load() != v {
		sh.count.Store(v)
	}
	if sh.kvBytes.Load() != sh.mu.kv {
		sh.kvBytes.Store(sh.mu.kv)
	}
	if sh.memBytes.Load() != sh.mu.mem {
		sh.memBytes.Store(sh.mu.mem)
	}
}
