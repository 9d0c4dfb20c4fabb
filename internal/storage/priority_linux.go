//go:build linux

package storage

import (
	"fmt"
	"runtime"
	"syscall"
)

// backgroundNice is the nice value of the threads that run Pebble's flushes
// and compactions: the lowest CPU priority, as RocksDB's
// LowerThreadPoolCPUPriority gives its compaction pool.
const backgroundNice = 19

// lowerThreadPriority pins the calling goroutine to its thread and lowers
// that thread's CPU priority. Pebble runs each flush and each compaction on a
// goroutine of its own that ends with the job, and the runtime terminates a
// thread whose locked goroutine exits, so the lowered thread never serves
// other goroutines and needs no restoring (which an unprivileged process could
// not do: raising a nice value back needs CAP_SYS_NICE). The main thread, if
// the job ran there, cannot exit: the runtime parks it for good instead, so
// it too runs nothing more. Threads the runtime starts meanwhile are cloned
// from its template thread, not from this one, so they do not inherit the
// priority.
func lowerThreadPriority() error {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, backgroundNice); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("storage: lowering background thread priority: %w", err)
	}
	// The raw getpriority system call answers 20 - nice.
	if p, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid); err != nil || 20-p != backgroundNice {
		runtime.UnlockOSThread()
		return fmt.Errorf("storage: background thread priority is %d after setting %d (%v)", 20-p, backgroundNice, err)
	}
	return nil
}
