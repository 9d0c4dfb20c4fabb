package storage

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ringkv/ringkv/internal/record"
)

// expiryLoop is the active expiry cycle, shaped like Redis' active expiry:
// every ExpiryInterval it handles up to ExpiryBatch due index entries, and it
// goes again at once while a tick fills its batch, so a backlog drains at full
// speed but each tick stays short.
func (s *Store) expiryLoop() {
	t := time.NewTicker(s.opts.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		for {
			n, err := s.ExpireNow()
			if err != nil {
				if !errors.Is(err, ErrClosed) {
					s.log.Error("expiry pass failed", "err", err)
				}
				break
			}
			if n < s.opts.ExpiryBatch {
				break
			}
			select {
			case <-s.stop:
				return
			default:
			}
		}
	}
}

// ExpireNow runs one expiry and GC pass synchronously: it handles up to
// ExpiryBatch deadline index entries due at the clock's current time and
// returns how many it handled. A live record past its expiry becomes a
// tombstone with the same version; a tombstone past its GC deadline is
// purged; an entry whose record has changed since is dropped. When n equals
// ExpiryBatch more entries may be due; ExpireAll drains them.
func (s *Store) ExpireNow() (n int, err error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	s.expiryMu.Lock()
	defer s.expiryMu.Unlock()

	now := s.opts.Clock.Now().UnixMilli()
	due, err := s.dueEntriesLocked(now)
	if err != nil {
		return 0, err
	}
	for _, ik := range due {
		if err := s.expireEntryLocked(ik); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ExpireAll runs ExpireNow until no due entry is left, for `ringkv repair`
// and tests; it returns the total handled.
func (s *Store) ExpireAll() (int, error) {
	total := 0
	for {
		n, err := s.ExpireNow()
		total += n
		if err != nil || n < s.opts.ExpiryBatch {
			return total, err
		}
	}
}

// dueEntriesLocked (expiryMu held) copies out up to ExpiryBatch index keys with a deadline at
// or before now. They are copied so the iterator closes before any write: a
// long-lived iterator pins memtables and sstables.
func (s *Store) dueEntriesLocked(now int64) ([][]byte, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixDeadline},
		UpperBound: deadlineBound(now + 1),
	})
	if err != nil {
		return nil, fmt.Errorf("storage: expiry: %w", err)
	}
	var due [][]byte
	for valid := it.First(); valid && len(due) < s.opts.ExpiryBatch; valid = it.Next() {
		due = append(due, bytes.Clone(it.Key()))
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("storage: expiry: %w", err)
	}
	return due, nil
}

// expireEntryLocked (expiryMu held) handles one due index entry under its key
// lock. The record is re-read there because it may have changed since the
// index was read. These writes skip the WAL fsync even with SyncAlways: each one follows from
// the index and the clock alone, so one lost in a crash is redone by the next
// pass after restart.
func (s *Store) expireEntryLocked(ik []byte) error {
	dl, token, key, err := parseDeadlineKey(ik)
	if err != nil {
		return err
	}
	mu := s.keyLock(token)
	mu.Lock()
	defer mu.Unlock()

	rk := recordKey(token, key)
	rec, found, err := s.readCached(token, rk)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(ik, nil)

	if !found || s.deadline(&rec) != dl {
		// Overwritten or removed since the entry was written; the record's
		// current entry, if any, is elsewhere in the index.
		if err := b.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("storage: expiry: %w", err)
		}
		s.counters.staleIndex.Add(1)
		return nil
	}

	if !rec.Tombstone {
		// The deadline of a live record is its ExpireAt, and it is due.
		dead := rec
		dead.Tombstone = true
		dead.Value = nil
		_ = b.Set(rk, dead.Encode(), nil)
		_ = b.Set(deadlineKey(s.deadline(&dead), token, key), nil, nil)
		s.beginNotify()
		defer s.endNotify()
		if err := b.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("storage: expiry: %w", err)
		}
		s.cacheWrite(token, rk, &dead)
		s.counters.expired.Add(1)
		s.notify(token, key, rec, dead)
		return nil
	}

	_ = b.Delete(rk, nil)
	s.beginNotify()
	defer s.endNotify()
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("storage: gc: %w", err)
	}
	s.cacheWrite(token, rk, nil)
	s.count.Add(-1)
	s.counters.gcPurged.Add(1)
	s.notify(token, key, rec, record.Record{})
	return nil
}

func (s *Store) notify(token uint64, key []byte, old, new record.Record) {
	if s.opts.OnApply != nil {
		s.opts.OnApply(token, key, old, new)
	}
}
