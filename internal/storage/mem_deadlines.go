package storage

import (
	"bytes"
	"container/heap"
	"sync"
)

// deadlineShards spreads the memory engine's deadline heaps so that writers
// of unrelated keys rarely share a heap's lock.
const deadlineShards = 64

// minArenaCompact is the dead arena bytes below which a shard never
// rewrites its key arena.
const minArenaCompact = 64 << 10

// deadlines is the memory engine's deadline index: per-shard min-heaps of
// {deadline, token, key} in which the key lives in a shard-wide byte arena,
// so the index holds no pointer per key for the garbage collector to trace.
//
// Entries are never removed when their record changes: an overwrite pushes
// the new deadline and leaves the old entry to be found stale when it comes
// due (Store.expireEntryLocked compares it with the record's deadline), as a
// lazy-deletion heap does. A record has at most one entry per write that
// gave it a deadline, and each leaves at its deadline, so the heap stays in
// proportion to the writes with TTLs within a GC grace period.
type deadlines struct {
	shards [deadlineShards]deadlineShard
	next   int // the shard the next due pass starts at; expiryMu guards it
}

type deadlineShard struct {
	mu   sync.Mutex
	h    deadlineHeap
	keys []byte // arena of the entries' keys
	dead int    // arena bytes of popped entries
}

type deadlineEntry struct {
	deadline int64
	token    uint64
	off, n   uint32
}

type deadlineHeap []deadlineEntry

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadlineEntry)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (d *deadlines) shard(token uint64) *deadlineShard {
	return &d.shards[token%deadlineShards]
}

// push adds key's deadline.
func (d *deadlines) push(deadline int64, token uint64, key []byte) {
	sh := d.shard(token)
	sh.mu.Lock()
	off := len(sh.keys)
	sh.keys = append(sh.keys, key...)
	// heap.Push boxes the entry in an interface: an allocation per push.
	// Appending and sifting up by hand keeps pushes allocation-free.
	sh.h = append(sh.h, deadlineEntry{deadline: deadline, token: token, off: uint32(off), n: uint32(len(key))})
	up(sh.h, len(sh.h)-1)
	sh.mu.Unlock()
}

func up(h deadlineHeap, j int) {
	for {
		i := (j - 1) / 2
		if i == j || !h.Less(j, i) {
			break
		}
		h.Swap(i, j)
		j = i
	}
}

// popDue takes out up to limit entries due at or before now, visiting the
// shards round-robin from where the last pass stopped so that a backlog in
// one shard does not starve the others. The caller holds expiryMu.
func (d *deadlines) popDue(now int64, limit int) []dueEntry {
	var out []dueEntry
	for i := 0; i < deadlineShards && len(out) < limit; i++ {
		sh := &d.shards[(d.next+i)%deadlineShards]
		sh.mu.Lock()
		for len(sh.h) > 0 && sh.h[0].deadline <= now && len(out) < limit {
			e := heap.Pop(&sh.h).(deadlineEntry)
			out = append(out, dueEntry{deadline: e.deadline, token: e.token, key: bytes.Clone(sh.keys[e.off : e.off+e.n])})
			sh.dead += int(e.n)
		}
		sh.compactLocked()
		sh.mu.Unlock()
	}
	d.next = (d.next + 1) % deadlineShards
	return out
}

// compactLocked rewrites the key arena without the popped entries' keys
// once they are most of it.
func (sh *deadlineShard) compactLocked() {
	if sh.dead < minArenaCompact || sh.dead < len(sh.keys)/2 {
		return
	}
	keys := make([]byte, 0, len(sh.keys)-sh.dead)
	for i := range sh.h {
		e := &sh.h[i]
		off := len(keys)
		keys = append(keys, sh.keys[e.off:e.off+e.n]...)
		e.off = uint32(off)
	}
	sh.keys, sh.dead = keys, 0
}

// bytes is the memory the index holds.
func (d *deadlines) bytes() int64 {
	var n int64
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		n += int64(cap(sh.keys)) + int64(cap(sh.h))*24
		sh.mu.Unlock()
	}
	return n
}

// has reports whether an entry for key at deadline is in the index (tests).
func (d *deadlines) has(deadline int64, token uint64, key []byte) bool {
	sh := d.shard(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, e := range sh.h {
		if e.deadline == deadline && e.token == token && bytes.Equal(sh.keys[e.off:e.off+e.n], key) {
			return true
		}
	}
	return false
}
