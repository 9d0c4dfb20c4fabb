package storage

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
)

// replayWorkers bounds the goroutines that apply replayed records. A
// restart's replay is CPU work on the index (a lookup and an insert per
// entry), and memindex's shards take writers in parallel: keys are
// partitioned over the workers by token, so each key's entries are applied
// by one worker in log order, which the purge rule below needs.
const replayWorkers = 8

// replayBatchBytes is the size at which the reader hands a worker its batch.
const replayBatchBytes = 256 << 10

// replay fans the log's record entries out to workers at open.
type replay struct {
	main    replayer
	workers []*replayWorker
	wg      sync.WaitGroup
	entries int64
}

func newReplay(e *memEngine, now int64) *replay {
	p := &replay{main: newReplayer(e, now)}
	p.main.replaceFn = p.main.replace
	n := min(runtime.GOMAXPROCS(0), replayWorkers)
	if n < 2 {
		return p // one CPU: the reader applies entries itself
	}
	for range n {
		w := &replayWorker{r: newReplayer(e, now), ch: make(chan []byte, 4), free: make(chan []byte, 4)}
		w.r.replaceFn = w.r.replace
		p.workers = append(p.workers, w)
		p.wg.Go(w.run)
	}
	return p
}

// finish hands the workers what is left, waits for them, and returns the
// first error any of them met.
func (p *replay) finish() error {
	for _, w := range p.workers {
		if len(w.cur) > 0 {
			w.ch <- w.cur
		}
		close(w.ch)
	}
	p.wg.Wait()
	for _, w := range p.workers {
		if w.err != nil {
			return w.err
		}
	}
	return nil
}

// replayWorker applies batches of record entries: each is token(8) len(4)
// entry, copied out of the log's buffer, which is only valid during the
// replay callback.
type replayWorker struct {
	r    replayer
	ch   chan []byte
	free chan []byte
	cur  []byte
	err  error
}

func (w *replayWorker) add(token uint64, entry []byte) {
	w.cur = binary.LittleEndian.AppendUint64(w.cur, token)
	w.cur = binary.LittleEndian.AppendUint32(w.cur, uint32(len(entry)))
	w.cur = append(w.cur, entry...)
	if len(w.cur) < replayBatchBytes {
		return
	}
	w.ch <- w.cur
	select {
	case b := <-w.free:
		w.cur = b[:0]
	default:
		w.cur = make([]byte, 0, replayBatchBytes+replayBatchBytes/4)
	}
}

func (w *replayWorker) run() {
	for b := range w.ch {
		for rest := b; len(rest) > 0; {
			token := binary.LittleEndian.Uint64(rest)
			n := binary.LittleEndian.Uint32(rest[8:])
			entry := rest[12 : 12+n]
			rest = rest[12+n:]
			if w.err == nil {
				w.err = w.r.record(entry, token)
			}
		}
		select {
		case w.free <- b:
		default:
		}
	}
}

// replayer rebuilds memory from the log at open.
//
// The log holds every record write in the order it was applied to its key
// (a key's writes are serialised by its key lock, from append to
// visibility), but not expiry and GC: those follow from the records and the
// clock, so replay redoes them. A record dead on arrival is stored as its
// tombstone and a tombstone past its GC deadline as nothing, as Apply does.
//
// A tombstone found stored past its GC deadline is taken as purged, and the
// entry after it is applied as to an absent key. That is what happened
// before the restart: an entry older than a stored tombstone is only in the
// log if Apply admitted it, which it does only once the tombstone is gone.
// Without this rule the tombstone would win on replay and hide an
// acknowledged write.
type replayer struct {
	e   *memEngine
	now int64
	buf []byte
	// rec is the record PutIf is deciding on; replaceFn is replace bound
	// once, so that a call allocates no closure.
	rec       *record.Record
	err       error
	replaceFn func(stored []byte) bool
}

func newReplayer(e *memEngine, now int64) replayer {
	return replayer{e: e, now: now}
}

// replay is the log's replay callback. Record entries go to the workers
// (see replayWorkers); raw entries are applied here, in log order.
func (p *replay) replay(entry []byte) error {
	p.entries++
	if len(entry) == 0 {
		return fmt.Errorf("%w: empty log entry", ErrCorrupt)
	}
	r := &p.main
	switch entry[0] {
	case entryRecord:
		key, _, err := parseLenPrefixed(entry[1:])
		if err != nil {
			return err
		}
		token := ring.Token(key)
		if len(p.workers) == 0 {
			return r.record(entry[1:], token)
		}
		p.workers[token%uint64(len(p.workers))].add(token, entry[1:])
		return nil
	case entryRawSet:
		if len(entry) < 2 {
			return fmt.Errorf("%w: short raw entry", ErrCorrupt)
		}
		k, v, err := parseLenPrefixed(entry[2:])
		if err != nil {
			return err
		}
		r.e.raw.set(entry[1], k, v)
		return nil
	case entryRawDelete:
		if len(entry) < 2 {
			return fmt.Errorf("%w: short raw entry", ErrCorrupt)
		}
		r.e.raw.delete(entry[1], entry[2:])
		return nil
	}
	return fmt.Errorf("%w: unknown log entry type %#x", ErrCorrupt, entry[0])
}

func (r *replayer) record(b []byte, token uint64) error {
	e := r.e
	key, enc, err := parseLenPrefixed(b)
	if err != nil {
		return err
	}
	rec, err := record.Decode(enc)
	if err != nil {
		return fmt.Errorf("%w: log record for %q: %w", ErrCorrupt, key, err)
	}
	if !rec.Live(r.now) && !rec.Tombstone {
		rec.Tombstone, rec.Value = true, nil
		enc = rec.Encode()
	}
	dl := deadlineOf(&rec, e.graceMS)
	if rec.Tombstone && dl <= r.now {
		// Dead past its GC deadline: it purges what it beats, and is
		// stored nowhere. Rare; two probes are fine.
		pv, found := e.idx.Get(token, key, r.buf[:0])
		r.buf = pv[:0]
		if found {
			prev, err := record.Decode(pv)
			if err != nil {
				return fmt.Errorf("%w: record %q: %w", ErrCorrupt, key, err)
			}
			if r.purged(&prev) || record.Newer(&rec, &prev) {
				e.idx.Delete(token, key)
			}
		}
		return nil
	}
	// Apply-if-newer in one probe of the index (memindex.PutIf).
	r.rec, r.err = &rec, nil
	stored := e.idx.PutIf(token, key, enc, r.replaceFn)
	r.rec = nil
	if r.err != nil {
		return fmt.Errorf("%w: record %q: %w", ErrCorrupt, key, r.err)
	}
	if stored && dl != 0 {
		e.dls.push(dl, token, key)
	}
	return nil
}

// purged reports whether a stored tombstone is past its GC deadline, and
// so counts as purged for the entries after it (see replayer).
func (r *replayer) purged(prev *record.Record) bool {
	return prev.Tombstone && deadlineOf(prev, r.e.graceMS) <= r.now
}

// replace is PutIf's decision for r.rec over the stored record; it runs
// under the shard's lock.
func (r *replayer) replace(stored []byte) bool {
	prev, err := record.Decode(stored)
	if err != nil {
		r.err = err
		return false
	}
	if record.Mergeable(r.rec, &prev) {
		// Each logged state of a counter is the merge of the one before
		// it with a write: a later entry holds all of an earlier one,
		// whatever their versions' order.
		m := record.Merge(r.rec, &prev)
		return record.Equal(&m, r.rec)
	}
	return r.purged(&prev) || record.Newer(r.rec, &prev)
}
