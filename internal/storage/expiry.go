package storage

import (
	"errors"
	"fmt"
	"time"

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
	due, err := s.eng.due(now, s.opts.ExpiryBatch)
	if err != nil {
		return 0, err
	}
	for _, d := range due {
		if err := s.expireEntryLocked(d); err != nil {
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

// expireEntryLocked (expiryMu held) handles one due index entry under its key
// lock. The record is re-read there because it may have changed since the
// index was read. These writes are not made durable before they are
// visible, even with SyncAlways: each one follows from the record and the
// clock alone, so one lost in a crash is redone by the next pass after
// restart.
func (s *Store) expireEntryLocked(d dueEntry) error {
	mu := s.keyLock(d.token)
	mu.Lock()
	defer mu.Unlock()

	rec, found, err := s.eng.read(d.token, d.key)
	if err != nil {
		return err
	}
	if !found || s.deadline(&rec) != d.deadline {
		// Overwritten or removed since the entry was written; the record's
		// current entry, if any, is elsewhere in the index.
		if err := s.eng.dropDue(d); err != nil {
			return err
		}
		s.counters.staleIndex.Add(1)
		return nil
	}

	if !rec.Tombstone {
		// The deadline of a live record is its ExpireAt, and it is due.
		dead := rec
		dead.Tombstone = true
		dead.Value = nil
		cs := [1]change{{token: d.token, key: d.key, rec: &dead, prev: &rec, found: true}}
		s.beginNotify()
		defer s.endNotify()
		if err := s.write(cs[:], false); err != nil {
			return fmt.Errorf("storage: expiry: %w", err)
		}
		s.counters.expired.Add(1)
		s.expiring.Add(-1)
		s.notify(d.token, d.key, rec, dead)
		return nil
	}

	cs := [1]change{{token: d.token, key: d.key, prev: &rec, found: true}}
	s.beginNotify()
	defer s.endNotify()
	if err := s.write(cs[:], false); err != nil {
		return fmt.Errorf("storage: gc: %w", err)
	}
	s.count.Add(-1)
	s.counters.gcPurged.Add(1)
	s.notify(d.token, d.key, rec, record.Record{})
	return nil
}

func (s *Store) notify(token uint64, key []byte, old, new record.Record) {
	if s.opts.OnApply != nil {
		s.opts.OnApply(token, key, old, new)
	}
}
