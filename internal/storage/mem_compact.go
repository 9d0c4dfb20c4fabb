package storage

import (
	"errors"
	"time"

	"github.com/ringkv/ringkv/internal/storage/applog"
)

// compactCheckInterval is how often the memory engine weighs its log
// against its live data.
const compactCheckInterval = time.Second

// compactLoop compacts the log in the background whenever it holds more
// than twice the live data (and at least compactMin), until stop closes.
func (e *memEngine) compactLoop(stop <-chan struct{}) {
	t := time.NewTicker(compactCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if size := e.wal.Size(); size < e.compactMin || size <= 2*e.liveLogBytes() {
			continue
		}
		if err := e.compact(stop); err != nil && !errors.Is(err, errCompactionStopped) {
			e.compactErrors.Add(1)
			e.log.Error("log compaction failed; the log keeps growing until one succeeds", "err", err)
		}
	}
}

// compact rewrites the log as a snapshot of memory: it rotates the log,
// writes every live record and raw entry into a snapshot (throttled to
// compactRate), and lets the log publish it and delete the segments it
// replaces. Writes go on meanwhile, into the segment after the rotation;
// nothing forks and nothing waits for the snapshot.
//
// Why the result replays to what memory holds:
//   - Every entry of a replaced segment is in memory (or superseded there)
//     before the snapshot reads memory: logged writes hold logMu's read
//     side from their append until they are visible, and the rotation
//     takes its write side.
//   - Replay is last-writer-wins per key, so a snapshot that read a record
//     before a newer write, whose entry is after the rotation, still
//     yields the newer one.
//   - A tombstone purged by GC is in no snapshot, and neither is any older
//     copy of its key: the snapshot holds memory, where the tombstone had
//     superseded them, and the segments that held them are deleted with
//     the tombstone's. An older copy in a segment after the rotation was
//     admitted by Apply after the purge, so memory held it too. So a purge
//     that is never logged cannot let an older copy come back on replay.
//   - Expiry conversions are not logged either; replay redoes them from
//     the record and the clock.
func (e *memEngine) compact(stop <-chan struct{}) error {
	e.compactMu.Lock()
	defer e.compactMu.Unlock()
	e.compacting.Store(true)
	defer e.compacting.Store(false)

	e.logMu.Lock()
	seg, err := e.wal.Rotate()
	e.logMu.Unlock()
	if err != nil {
		return err
	}
	start := time.Now()
	var written int64
	var buf []byte
	err = e.wal.WriteSnapshot(seg, e.compactRate, func(w applog.SnapshotWriter) error {
		add := func(entry []byte) error {
			select {
			case <-stop:
				return errCompactionStopped
			default:
			}
			written += int64(len(entry))
			return w.Add(entry)
		}
		for _, p := range e.raw.prefixes() {
			var err error
			e.raw.snapshot(p).Ascend(func(it rawItem) bool {
				buf = appendRawSetEntry(buf[:0], p, it.k, it.v)
				err = add(buf)
				return err == nil
			})
			if err != nil {
				return err
			}
		}
		return e.idx.Range(0, 0, nil, func(_ uint64, key, val []byte) error {
			buf = appendRecordEntry(buf[:0], key, val)
			return add(buf)
		})
	})
	if err != nil {
		return err
	}
	e.compactions.Add(1)
	e.compactBytes.Add(uint64(written))
	e.log.Info("log compacted", "upto_segment", seg, "written_bytes", written, "log_bytes", e.wal.Size(),
		"took", time.Since(start))
	return nil
}
