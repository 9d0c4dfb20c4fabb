package storage

import "sync"

// Values read from the memory engine are copied out of memindex's slabs,
// which reuse their memory, into memory the caller may keep. One small
// allocation per read was the largest cost a GET paid on the Go heap (and
// the only allocation of a single-node GET), so reads carve their copies
// out of shared 64 KiB chunks instead: a chunk is one allocation for
// hundreds of values, and the garbage collector frees it once none of them
// is referenced. Large values get their own allocation, so that a kept
// value pins at most 64 KiB of chunk.

const (
	valueChunkSize = 64 << 10
	// maxCarvedValue is the largest value carved from a chunk.
	maxCarvedValue = valueChunkSize / 16
)

// valueChunk is the free tail of a chunk; chunks travel in a sync.Pool, so
// that concurrent readers rarely share one.
type valueChunk struct{ free []byte }

var valueChunks = sync.Pool{New: func() any { return new(valueChunk) }}

// readScratch is the buffer a read copies a value into before it knows its
// length.
type readScratch struct{ b []byte }

var readScratches = sync.Pool{New: func() any { return &readScratch{b: make([]byte, 0, 512)} }}

// keepable returns a copy of v the caller may keep; its capacity is its
// length, so an append to it cannot write over a neighbour.
func keepable(v []byte) []byte {
	n := len(v)
	if n > maxCarvedValue {
		return append([]byte(nil), v...)
	}
	c := valueChunks.Get().(*valueChunk)
	if len(c.free) < n {
		c.free = make([]byte, valueChunkSize)
	}
	out := c.free[:n:n]
	c.free = c.free[n:]
	valueChunks.Put(c)
	copy(out, v)
	return out
}
