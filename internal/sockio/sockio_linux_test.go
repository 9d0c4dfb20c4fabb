package sockio

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// A socket error from the kernel comes back as a *net.OpError holding its
// errno, as net.Conn reports it.
func TestResetByPeer(t *testing.T) {
	c, s := tcpPair(t)
	// Closing with unread data makes the kernel send a reset.
	if _, err := c.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	s.Close()
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if _, err = c.Write([]byte("more")); err != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var oe *net.OpError
	var errno syscall.Errno
	if !errors.As(err, &oe) || !errors.As(err, &errno) {
		t.Fatalf("Write to a reset connection: %v (%T); want a *net.OpError with an errno", err, err)
	}
	if errno != syscall.ECONNRESET && errno != syscall.EPIPE {
		t.Fatalf("errno %v; want ECONNRESET or EPIPE", errno)
	}
}

func TestRawCallsReportErrno(t *testing.T) {
	if _, errno := RawRead(-1, make([]byte, 1)); errno != syscall.EBADF {
		t.Fatalf("RawRead(-1): errno %v; want EBADF", errno)
	}
	if _, errno := RawWrite(-1, []byte("x")); errno != syscall.EBADF {
		t.Fatalf("RawWrite(-1): errno %v; want EBADF", errno)
	}
	if n, errno := RawRead(-1, nil); n != 0 || errno != 0 {
		t.Fatalf("RawRead of nothing: %d, %v; want no call", n, errno)
	}
}
