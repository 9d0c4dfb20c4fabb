package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the data directory's lock. Pebble keeps a LOCK of its own
// in the same directory, so ours has another name; it is taken first, by
// both engines, so that a second process is told which process holds the
// directory instead of Pebble's "resource temporarily unavailable".
const lockFileName = "ringkv.lock"

// dirLock is a held lock on a data directory; nil when there is nothing to
// lock (an in-memory or test filesystem).
type dirLock struct {
	f *os.File
}

// lockDir takes the data directory's lock when the store lives on the real
// disk. The lock is an flock on lockFileName, which holds the holder's pid:
// the kernel drops the lock when the process dies, however it dies, so a
// stale file never blocks a restart.
func lockDir(opts *Options) (*dirLock, error) {
	if opts.FS != nil || opts.InMemory {
		return nil, nil
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create data directory: %w", err)
	}
	path := filepath.Join(opts.Dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("storage: open lock file: %w", err)
	}
	if err := flock(f); err != nil {
		b, _ := os.ReadFile(path)
		_ = f.Close()
		holder := strings.TrimSpace(string(b))
		if _, perr := strconv.Atoi(holder); perr != nil {
			holder = "unknown"
		}
		return nil, fmt.Errorf("storage: data directory %s is in use by another process: %s is held by pid %s: %w", opts.Dir, path, holder, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// release drops the lock; the file stays, harmless without its flock.
func (l *dirLock) release() {
	if l != nil {
		_ = l.f.Close()
	}
}
