//go:build !amd64 && !arm64

package memindex

func prefetch(uintptr) {}
