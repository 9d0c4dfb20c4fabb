package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
)

// The flush barrier is FLUSHALL's: a version timestamp below which every
// record is dead. It is kept in the metadata keyspace so that it outlives a
// restart, and only ever rises. Reads do not see a record below it, Apply
// drops one (whichever path brought it: a hint, a repair, a stream,
// anti-entropy), and PurgeBelowBarrier removes those stored.

// barrierKey is the barrier's key in the PrefixMeta keyspace.
var barrierKey = []byte("flush-barrier")

// loadBarrier reads the barrier at Open.
func (s *Store) loadBarrier() error {
	v, found, err := s.eng.rawGet(PrefixMeta, barrierKey)
	if err != nil || !found {
		return err
	}
	if len(v) != 8 {
		return fmt.Errorf("%w: flush barrier of %d bytes", ErrCorrupt, len(v))
	}
	s.barrier.Store(binary.BigEndian.Uint64(v))
	return nil
}

// Barrier returns the flush barrier; 0 when none was ever set.
func (s *Store) Barrier() clock.Timestamp { return clock.Timestamp(s.barrier.Load()) }

// belowBarrier reports whether rec is dead by the flush barrier.
func (s *Store) belowBarrier(rec *record.Record) bool {
	return uint64(rec.Version.TS) < s.barrier.Load()
}

// SetBarrier raises the flush barrier to ts, durably, before it returns; a
// ts at or below the barrier changes nothing. Records below it are dead
// from then on; PurgeBelowBarrier removes them.
func (s *Store) SetBarrier(ts clock.Timestamp) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	s.barrierMu.Lock()
	defer s.barrierMu.Unlock()
	if uint64(ts) <= s.barrier.Load() {
		return nil
	}
	if err := s.eng.rawSet(PrefixMeta, barrierKey, binary.BigEndian.AppendUint64(nil, uint64(ts))); err != nil {
		return err
	}
	if err := s.eng.flush(); err != nil {
		return err
	}
	s.barrier.Store(uint64(ts))
	return nil
}

// purgeBatch bounds the keys one purge step collects from a scan before it
// removes them, each under its key lock.
const purgeBatch = 1000

// PurgeBelowBarrier removes every stored record below the flush barrier
// and returns how many it removed. Records that a write replaced with a
// newer one meanwhile are kept.
func (s *Store) PurgeBelowBarrier() (int, error) {
	n := 0
	from := uint64(0)
	for {
		var keys [][]byte
		var next uint64
		more := false
		err := s.Scan(from, func(token uint64, key []byte, rec *record.Record) error {
			if len(keys) >= purgeBatch && token != next-1 {
				next, more = token, true
				return ErrStop
			}
			if s.belowBarrier(rec) {
				keys = append(keys, append([]byte(nil), key...))
			}
			next = token + 1
			return nil
		})
		if err != nil {
			return n, err
		}
		for _, k := range keys {
			removed, err := s.purgeOne(k)
			if err != nil {
				return n, err
			}
			if removed {
				n++
			}
		}
		if !more || next == 0 {
			return n, nil
		}
		from = next
	}
}

// purgeOne removes key's record if it is still below the barrier.
func (s *Store) purgeOne(key []byte) (bool, error) {
	if err := s.acquire(); err != nil {
		return false, err
	}
	defer s.release()
	token := ring.Token(key)
	mu := s.keyLock(token)
	mu.Lock()
	defer mu.Unlock()
	rec, found, err := s.eng.read(token, key)
	if err != nil || !found || !s.belowBarrier(&rec) {
		return false, err
	}
	cs := [1]change{{token: token, key: key, prev: &rec, found: true}}
	s.beginNotify()
	defer s.endNotify()
	if err := s.write(cs[:], false); err != nil {
		return false, fmt.Errorf("storage: flush purge: %w", err)
	}
	s.count.Add(-1)
	if d := expiringDelta(&record.Record{Tombstone: true}, &rec, true); d != 0 {
		s.expiring.Add(d)
	}
	s.counters.flushPurged.Add(1)
	s.notify(token, key, rec, record.Record{})
	return true, nil
}
