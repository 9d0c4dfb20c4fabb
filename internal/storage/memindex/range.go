package memindex

import (
	"bytes"
	"slices"
	"sync"
)

// Range calls fn for every entry with from <= token < to (to == 0: to the
// end of the ring, so Range(0, 0, ...) visits everything) in (token, key)
// order; from >= to != 0 is an empty range: the caller splits a range that
// wraps. Each shard's entries are copied while hold (if not nil) and the
// shard's lock are held, taken in that order, then fn runs on the copy with
// no lock held, so fn may call Get, Put and Delete; what it changes in
// shards not yet visited shows in the entries fn sees later. key and val are
// valid only during the call. An error from fn stops Range and is returned.
//
// Only the shards that intersect [from, to) are visited, and each is
// sorted on its own: a range of one 1/4096th of the ring reads and sorts
// one shard.
func (ix *Index) Range(from, to uint64, hold sync.Locker, fn func(token uint64, key, val []byte) error) error {
	if to != 0 && from >= to {
		return nil
	}
	// to-1 wraps to the last token when to == 0, the end of the ring.
	first, last := from>>ix.shift, (to-1)>>ix.shift
	var sc scratch
	for s := first; s <= last; s++ {
		sh := &ix.shards[s]
		sc.reset()
		if hold != nil {
			hold.Lock()
		}
		sh.mu.RLock()
		sh.collectLocked(from, to, &sc)
		sh.mu.RUnlock()
		if hold != nil {
			hold.Unlock()
		}
		if err := sc.each(fn); err != nil {
			return err
		}
	}
	return nil
}

// scratch holds one shard's entries in range, copied out of the chunks.
type scratch struct {
	buf  []byte
	ents []scratchEnt
}

type scratchEnt struct {
	tok    uint64
	off    int // of the key in buf; the value follows
	kl, vl int
}

func (sc *scratch) reset() {
	sc.buf = sc.buf[:0]
	sc.ents = sc.ents[:0]
}

func (sh *shard) collectLocked(from, to uint64, sc *scratch) {
	for _, s := range sh.mu.tab {
		if !s.live() {
			continue
		}
		tok, k, v := sh.entryLocked(s.loc())
		if tok < from || to != 0 && tok >= to {
			continue
		}
		sc.ents = append(sc.ents, scratchEnt{tok: tok, off: len(sc.buf), kl: len(k), vl: len(v)})
		sc.buf = append(sc.buf, k...)
		sc.buf = append(sc.buf, v...)
	}
}

func (sc *scratch) key(e *scratchEnt) []byte { return sc.buf[e.off : e.off+e.kl : e.off+e.kl] }

func (sc *scratch) each(fn func(token uint64, key, val []byte) error) error {
	slices.SortFunc(sc.ents, func(a, b scratchEnt) int {
		if a.tok != b.tok {
			if a.tok < b.tok {
				return -1
			}
			return 1
		}
		return bytes.Compare(sc.key(&a), sc.key(&b))
	})
	for i := range sc.ents {
		e := &sc.ents[i]
		v := sc.buf[e.off+e.kl : e.off+e.kl+e.vl : e.off+e.kl+e.vl]
		if err := fn(e.tok, sc.key(e), v); err != nil {
			return err
		}
	}
	return nil
}
