package server

import "syscall"

// totalRAM is the host's memory in bytes, or 0 when unknown.
func totalRAM() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
