package storage

import (
	"bytes"
	"slices"
	"sync"

	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
)

// Write is one write of ApplyBatch: Key and Rec go in, Result and Err come
// out, as Apply's arguments and results.
type Write struct {
	Key []byte
	// Token is ring.Token(Key) when the caller has taken it already, or 0
	// for ApplyBatch to take it (for a key whose token is 0, the same).
	Token  uint64
	Rec    record.Record
	Result ApplyResult
	Err    error
}

// ApplyBatch applies every write as Apply would, one after the other in
// slice order (a later write to a key sees an earlier one), but commits
// them in one engine write: a pipeline of 16 SETs costs one log append (or
// one pass through Pebble's commit pipeline), not 16. An invalid write fails alone; if the
// commit fails, every write the batch held fails with its error and none
// of them is stored. Rec of a write that is already dead is rewritten as
// its tombstone, as Apply stores it. The batch holds the key locks of all
// its keys until its commit is done.
//
// Unlike Apply's, a write's Result.Prev has its Value only when the write
// was not applied (the newer record it lost to, which a coordinator writes
// again): batches carry pipelined SETs, whose callers never read the value
// they replaced, and copying it out of the store was a tenth of a SET's
// cost.
func (s *Store) ApplyBatch(ws []Write) {
	if len(ws) == 1 {
		ws[0].Result, ws[0].Err = s.Apply(ws[0].Key, ws[0].Rec)
		return
	}
	if err := s.acquire(); err != nil {
		for i := range ws {
			ws[i].Err = err
		}
		return
	}
	defer s.release()

	sc := batchScratchPool.Get().(*batchScratch)
	defer sc.put()
	now := s.opts.Clock.Now().UnixMilli()
	for i := range ws {
		w := &ws[i]
		w.Result, w.Err = ApplyResult{}, s.check(w.Key, &w.Rec, now)
		if w.Err != nil {
			continue
		}
		token := w.Token
		if token == 0 {
			token = ring.Token(w.Key)
		}
		// Growing sc.keys leaves the earlier keys where they were, in
		// the old array, which nothing writes again.
		n := len(sc.keys)
		sc.keys = appendRecordKey(sc.keys, token, w.Key)
		sc.items = append(sc.items, batchItem{w: i, token: token, rk: sc.keys[n:len(sc.keys):len(sc.keys)]})
		sc.tokens = append(sc.tokens, token)
	}
	if len(sc.items) == 0 {
		return
	}
	if s.opts.OnPrefetch != nil {
		s.opts.OnPrefetch(sc.tokens)
	}
	// In key order, writes to one key sit side by side (the sort is
	// stable, so they keep their order) and each finds the one before it.
	// Pebble also inserts a batch's keys into its memtable with one
	// inserter that starts each search where the last one ended when that
	// still brackets the key; for 16 random keys among a memtable's
	// hundreds of thousands that saved nothing measurable
	// (BenchmarkApplyBatchRandom1M with and without the sort).
	sc.sortItems()

	// Stripe locks in ascending order, each once: two batches cannot
	// deadlock, and Apply and Get take only one.
	for _, it := range sc.items {
		sc.stripes = append(sc.stripes, uint32(it.token&(keyLockStripes-1)))
	}
	slices.Sort(sc.stripes)
	sc.stripes = slices.Compact(sc.stripes)
	for _, st := range sc.stripes {
		s.keyLocks[st].Lock()
	}
	defer func() {
		for _, st := range sc.stripes {
			s.keyLocks[st].Unlock()
		}
	}()

	for k := range sc.items {
		it := &sc.items[k]
		w := &ws[it.w]
		if k > 0 && bytes.Equal(sc.items[k-1].rk, it.rk) {
			// The same key as the write before: its outcome is what
			// this one finds stored.
			p := &sc.items[k-1]
			pw := &ws[p.w]
			switch {
			case p.staged:
				it.prev, it.found = pw.Rec, true
			case pw.Err == nil:
				it.prev, it.found, it.peeked = p.prev, p.found, p.peeked
			default:
				w.Err = pw.Err
				continue
			}
		} else {
			var err error
			it.prev, it.found, err = s.eng.peek(it.token, w.Key)
			it.peeked = true
			if err != nil {
				w.Err = err
				continue
			}
		}
		if it.peeked && it.found && !it.prev.Tombstone && w.Rec.Version.Compare(it.prev.Version) == 0 {
			// One version twice (a retried write): the values break a tie
			// (record.Compare), so this one needs the stored value.
			if err := s.readPeeked(it, w.Key); err != nil {
				w.Err = err
				continue
			}
		}
		w.Result = ApplyResult{Prev: it.prev, PrevFound: it.found}
		if !s.admit(&w.Rec, &it.prev, it.found, now) {
			if it.peeked && it.found && !it.prev.Tombstone {
				// A stale write: its caller is told the newer record it
				// lost to, value and all (the coordinator writes it again).
				if err := s.readPeeked(it, w.Key); err != nil {
					w.Result, w.Err = ApplyResult{}, err
					continue
				}
				w.Result.Prev = it.prev
			}
			continue
		}
		it.staged = true
	}
	// sc.items is not appended to from here on, so the changes may point
	// into it.
	for k := range sc.items {
		if it := &sc.items[k]; it.staged {
			w := &ws[it.w]
			sc.changes = append(sc.changes, change{token: it.token, key: w.Key, rec: &w.Rec, prev: &it.prev, found: it.found})
		}
	}
	if len(sc.changes) == 0 {
		return
	}
	s.beginNotify()
	defer s.endNotify()
	if err := s.write(sc.changes, true); err != nil {
		s.failStaged(ws, sc.items, err)
		return
	}
	for k := range sc.items {
		if it := &sc.items[k]; it.staged {
			w := &ws[it.w]
			s.applied(it.token, w.Key, &w.Rec, &it.prev, it.found)
			w.Result.Applied = true
		}
	}
}

// readPeeked replaces it.prev, read by engine.peek, with the whole stored
// record. The batch holds the key's lock: nothing has replaced it since.
func (s *Store) readPeeked(it *batchItem, key []byte) error {
	rec, found, err := s.eng.read(it.token, key)
	if err != nil {
		return err
	}
	it.prev, it.found, it.peeked = rec, found, false
	return nil
}

// compareItems orders batch items as their record keys (the token, big
// endian, then the key) sort, comparing the tokens as numbers first: most
// pairs differ there, and bytes.Compare of the whole record keys was the
// larger part of the sort.
func compareItems(a, b *batchItem) int {
	if a.token != b.token {
		if a.token < b.token {
			return -1
		}
		return 1
	}
	return bytes.Compare(a.rk, b.rk)
}

// failStaged fails every staged write of a batch that is not committed.
func (s *Store) failStaged(ws []Write, items []batchItem, err error) {
	for _, it := range items {
		if it.staged {
			ws[it.w].Result, ws[it.w].Err = ApplyResult{}, err
		}
	}
}

// batchItem is ApplyBatch's view of one valid write.
type batchItem struct {
	w      int // index into the writes
	token  uint64
	rk     []byte // record key, in batchScratch.keys
	prev   record.Record
	found  bool
	staged bool
	// peeked: prev is the stored record without its Value (engine.peek),
	// not a write of this batch.
	peeked bool
}

// batchScratch is the working memory of one ApplyBatch call, pooled so that a
// batch allocates none of it.
type batchScratch struct {
	items   []batchItem
	keys    []byte
	stripes []uint32
	tokens  []uint64 // for OnPrefetch
	changes []change
	// order and sorted serve sortItems.
	order  []int32
	sorted []batchItem
}

// sortItems puts items in key order, stably. It sorts their indexes and
// then moves each item once: an item is over a hundred bytes, and the
// insertion sort that slices uses for small slices moved them at every
// step (a twentieth of a replica's CPU under pipelined SETs).
func (sc *batchScratch) sortItems() {
	sc.order = sc.order[:0]
	for i := range sc.items {
		sc.order = append(sc.order, int32(i))
	}
	items := sc.items
	slices.SortStableFunc(sc.order, func(a, b int32) int { return compareItems(&items[a], &items[b]) })
	sorted := sc.sorted[:0]
	for _, i := range sc.order {
		sorted = append(sorted, items[i])
	}
	sc.items, sc.sorted = sorted, items[:0]
}

var batchScratchPool = sync.Pool{New: func() any { return new(batchScratch) }}

// maxPooledScratch keeps a huge batch's scratch out of the pool.
const maxPooledScratch = 1 << 16

func (sc *batchScratch) put() {
	if cap(sc.keys) > maxPooledScratch || cap(sc.items) > maxPooledScratch/64 {
		return
	}
	clear(sc.items) // values of prev records
	clear(sc.changes)
	sc.items, sc.keys, sc.stripes, sc.changes = sc.items[:0], sc.keys[:0], sc.stripes[:0], sc.changes[:0]
	sc.tokens = sc.tokens[:0]
	batchScratchPool.Put(sc)
}
