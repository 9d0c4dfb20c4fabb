package memindex

import (
	"sync"
	"sync/atomic"
)

// poolPerSize bounds the freed chunks kept per size: a shard that compacts
// frees about one chunk as it maps one, so a few per size turn nearly every
// compaction's mapping into a reuse, and the bound keeps at most a few
// megabytes idle (4096 shards, 1 MiB chunks: 16 MiB). An index of few
// shards keeps fewer, so that the pool does not outweigh its data.
const poolPerSize = 8

// chunkPool keeps shared chunks that compaction freed, for the next one
// that needs a chunk of the same size. A fresh mapping costs an mmap, a
// page fault per page written and, when freed, an munmap whose TLB
// shootdown interrupts the other cores: together a quarter of an overwrite
// load's CPU before the pool.
type chunkPool struct {
	mu      sync.Mutex
	perSize int
	free    map[int][]pooled
	// bytes counts the pages of pooled chunks that hold memory.
	bytes atomic.Int64
}

type pooled struct {
	mem     []byte
	touched int
}

func (p *chunkPool) get(size int) (pooled, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.free[size]
	if len(l) == 0 {
		return pooled{}, false
	}
	c := l[len(l)-1]
	p.free[size] = l[:len(l)-1]
	p.bytes.Add(-int64(roundPage(c.touched)))
	return c, true
}

// put keeps c, or unmaps it when the pool has enough of its size.
func (p *chunkPool) put(c pooled) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free[len(c.mem)]) >= p.perSize {
		unmapBytes(c.mem)
		return
	}
	if p.free == nil {
		p.free = make(map[int][]pooled)
	}
	p.free[len(c.mem)] = append(p.free[len(c.mem)], c)
	p.bytes.Add(int64(roundPage(c.touched)))
}

func (p *chunkPool) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.free {
		for _, c := range l {
			unmapBytes(c.mem)
		}
	}
	p.free = nil
	p.bytes.Store(0)
}
