package replication

import (
	"encoding/binary"
	"sync"

	"github.com/ringkv/ringkv/internal/ring"
)

// Prefetcher is a LocalStore that can warm the CPU cache for a batch of keys
// it is about to read or apply (storage.Store does). A pipeline's keys are
// independent, so looking them all up first overlaps their cache misses,
// which one Get or Apply after another would take in turn. Optional: a
// LocalStore without it works the same, a little slower.
// It takes the keys' tokens (ring.Token): the store indexes by token, and a
// coordinator holds each key's token already.
type Prefetcher interface {
	PrefetchTokens(tokens []uint64)
}

// tokensPool holds the token lists built for a prefetch, so that a batch
// does not allocate one.
var tokensPool = sync.Pool{New: func() any { return new([]uint64) }}

// prefetch warms the local store for the keys whose tokens are toks[i], for
// every i in idx, or for all of toks when idx covers them all.
func (c *Coordinator) prefetch(toks []uint64, idx ...[]int) {
	if c.prefetcher == nil {
		return
	}
	n := 0
	for _, ix := range idx {
		n += len(ix)
	}
	if n < 2 {
		return
	}
	if n == len(toks) {
		c.prefetchAll(toks)
		return
	}
	c.prefetchPooled(func(dst []uint64) []uint64 {
		for _, ix := range idx {
			for _, i := range ix {
				dst = append(dst, toks[i])
			}
		}
		return dst
	})
}

// prefetchAll warms the local store for the keys whose tokens are toks.
func (c *Coordinator) prefetchAll(toks []uint64) {
	if c.prefetcher != nil && len(toks) > 1 {
		c.prefetcher.PrefetchTokens(toks)
	}
}

// prefetchBatch warms the local store for the keys of a batch request's
// items (serveBatch's framing); key returns an item's key, or nil. A
// request that is not well framed is left for serveBatch to refuse.
func (c *Coordinator) prefetchBatch(p []byte, key func(item []byte) []byte) {
	if c.prefetcher == nil {
		return
	}
	n, w := binary.Uvarint(p)
	if w <= 0 || n < 2 || n > maxBatchWrites {
		return
	}
	p = p[w:]
	c.prefetchPooled(func(dst []uint64) []uint64 {
		for range n {
			item, rest, err := readBytes(p)
			if err != nil {
				break
			}
			p = rest
			if k := key(item); k != nil {
				dst = append(dst, ring.Token(k))
			}
		}
		return dst
	})
}

// prefetchPooled prefetches the tokens fill appends to a list from
// tokensPool.
func (c *Coordinator) prefetchPooled(fill func(dst []uint64) []uint64) {
	buf := tokensPool.Get().(*[]uint64)
	toks := fill((*buf)[:0])
	c.prefetcher.PrefetchTokens(toks)
	*buf = toks[:0]
	if cap(toks) <= maxPooledBatch {
		tokensPool.Put(buf)
	}
}

// itself is a MethodGetBatch item's key: the item is the key.
func itself(p []byte) []byte { return p }
