//go:build !linux

package server

// totalRAM is unknown off Linux: the cap takes its 1 GiB ceiling.
func totalRAM() int64 { return 0 }
