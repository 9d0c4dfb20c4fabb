//go:build !linux

package sockio

import "net"

// Wrap returns nc unchanged: raw socket calls are implemented for Linux only.
func Wrap(nc net.Conn) net.Conn { return nc }
