//go:build !unix

package storage

import "os"

// flock is a no-op where flock(2) does not exist; Pebble's own LOCK still
// guards the Pebble engine there.
func flock(*os.File) error { return nil }
