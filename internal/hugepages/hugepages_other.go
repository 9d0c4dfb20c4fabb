//go:build !linux

package hugepages

// Reserve does nothing: transparent huge pages are a Linux feature.
func Reserve(n int64) (Result, error) { return Result{Mode: ModeUnknown}, nil }
