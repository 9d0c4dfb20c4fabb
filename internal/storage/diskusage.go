package storage

import (
	"io/fs"
	"path/filepath"
	"sync"
	"time"
)

// diskUsageEvery bounds how often the data directory is walked: a scrape
// reads the last figure, at most this old.
const diskUsageEvery = 10 * time.Second

// diskUsage measures what the data directory occupies on disk: every file
// and directory under it, by allocated blocks as du counts them, so that
// preallocated and sparse files count for what they take. Both engines
// report it, the memory engine's log and snapshots as much as Pebble's
// tables, WALs and manifests.
type diskUsage struct {
	dir string // "" when the store keeps nothing on disk
	mu  sync.Mutex
	at  time.Time
	n   int64
}

func (d *diskUsage) bytes() int64 {
	if d.dir == "" {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.at.IsZero() && time.Since(d.at) < diskUsageEvery {
		return d.n
	}
	var n int64
	// Files vanish while the walk runs (a finished compaction, a recycled
	// WAL): skip them, they hold nothing now.
	_ = filepath.WalkDir(d.dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := e.Info(); err == nil {
			n += allocated(fi)
		}
		return nil
	})
	d.n, d.at = n, time.Now()
	return n
}
