package sockio

import (
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxRaw bounds the bytes one raw call moves: 256 KiB take tens of µs to
// copy, about as long as the loopback write that made raw calls worth it.
const maxRaw = 256 << 10

// conn is a net.Conn whose Read and Write are raw calls on its socket.
type conn struct {
	net.Conn
	rc syscall.RawConn
}

// Wrap returns nc with Read and Write done as raw calls on its socket,
// waiting on Go's poller only when the socket has nothing to read or no room
// to write. Every other method is nc's. A connection that exposes no socket
// (TLS, net.Pipe, a test wrapper) comes back unchanged.
func Wrap(nc net.Conn) net.Conn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return &conn{Conn: nc, rc: rc}
}

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, errno = RawRead(int(fd), p)
			if errno != unix.EINTR {
				return errno != unix.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *conn) Write(p []byte) (int, error) {
	done := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			n, e := RawWrite(int(fd), p[done:])
			switch e {
			case 0:
				done += n
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = c.opError("write", errno)
	}
	return done, err
}

func (c *conn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
}

// RawRead is one read(2) of up to maxRaw bytes on the non-blocking socket fd,
// made without telling the scheduler. A zero Errno with n == 0 is the end of
// the stream.
func RawRead(fd int, p []byte) (n int, errno syscall.Errno) {
	return raw(unix.SYS_READ, fd, p)
}

// RawWrite is one write(2) of up to maxRaw bytes on the non-blocking socket
// fd, made without telling the scheduler; it may write less than p.
func RawWrite(fd int, p []byte) (n int, errno syscall.Errno) {
	return raw(unix.SYS_WRITE, fd, p)
}

func raw(trap uintptr, fd int, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	if len(p) > maxRaw {
		p = p[:maxRaw]
	}
	r, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}
