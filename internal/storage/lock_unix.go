//go:build unix

package storage

import (
	"os"
	"syscall"
)

// flock takes an exclusive flock without waiting. flock, not fcntl: an
// fcntl lock belongs to the process, so a second store opened by the same
// process (a test, a bug) would be granted it.
func flock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
