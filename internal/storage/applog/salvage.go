package applog

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// SalvageReport says what Options.Salvage set aside: the file's original path,
// where it was moved, the offset of the first damage and why. The Entries
// before the damage were replayed and copied into the new segment, so they
// survive the next restart too.
type SalvageReport struct {
	Path    string
	MovedTo string
	Offset  int64
	Entries int64
	Err     error
}

// salvage records a corrupt file for finishSalvage. Nothing moves yet: the
// file's valid entries must first be durable in the new segment.
func (l *Log) salvage(ce *CorruptError, entries int64) {
	l.pendingSalvage = append(l.pendingSalvage, SalvageReport{Path: ce.Path, Offset: ce.Offset, Entries: entries, Err: ce.Err})
}

func (l *Log) isSalvaged(path string) bool {
	for _, r := range l.pendingSalvage {
		if r.Path == path {
			return true
		}
	}
	return false
}

// finishSalvage copies the valid frames of each corrupt file into the new
// active segment, fsyncs it, and only then renames the files aside (never
// deleting one). A crash in between leaves the corrupt file where it was, so
// the operator's next salvage finds it again; entries copied twice are
// harmless to last-writer-wins replay.
func (l *Log) finishSalvage() error {
	if len(l.pendingSalvage) == 0 {
		return nil
	}
	if err := l.wmu.broken; err != nil {
		return fmt.Errorf("applog: salvage needs a new segment to keep the valid entries in: %w", err)
	}
	seg := l.wmu.seg
	buf := make([]byte, 1<<20)
	for _, r := range l.pendingSalvage {
		if r.Offset <= headerSize {
			continue
		}
		f, err := l.opts.FS.Open(r.Path)
		if err != nil {
			return fmt.Errorf("applog: salvage: open %s: %w", r.Path, err)
		}
		for off := int64(headerSize); off < r.Offset; {
			n := min(int64(len(buf)), r.Offset-off)
			if _, err = f.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
				break
			}
			if _, err = seg.f.Write(buf[:n]); err != nil {
				break
			}
			off += n
			seg.size += n
			l.size.Add(n)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("applog: salvage: copy the valid entries of %s: %w", r.Path, err)
		}
	}
	if err := seg.f.Sync(); err != nil {
		return fmt.Errorf("applog: salvage: fsync %s: %w", l.path(segName(seg.num)), err)
	}
	seg.synced = seg.size
	now := strconv.FormatInt(time.Now().Unix(), 10)
	for _, r := range l.pendingSalvage {
		r.MovedTo = r.Path + corruptTag + now
		if err := l.opts.FS.Rename(r.Path, r.MovedTo); err != nil {
			return fmt.Errorf("applog: salvage: set aside %s: %w", r.Path, err)
		}
		l.log.Warn("salvage: set a corrupt log file aside; its entries after the damage are lost on this node",
			"file", r.Path, "moved_to", r.MovedTo, "offset", r.Offset, "entries_kept", r.Entries, "reason", r.Err)
		l.stats.salvaged.Add(1)
		l.salvaged = append(l.salvaged, r)
	}
	l.pendingSalvage = nil
	return syncDir(l.opts.FS, l.opts.Dir)
}
