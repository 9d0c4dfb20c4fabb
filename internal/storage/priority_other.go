//go:build !linux

package storage

import "errors"

// lowerThreadPriority is Linux's alone: elsewhere a thread's priority is not
// its own to set this way, and background jobs run at the node's priority.
func lowerThreadPriority() error {
	return errors.New("storage: lowering background thread priority is supported on Linux only")
}
