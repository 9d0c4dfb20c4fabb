//go:build !unix

package storage

import "io/fs"

// allocated is fi's size where the block count is not available.
func allocated(fi fs.FileInfo) int64 { return fi.Size() }
