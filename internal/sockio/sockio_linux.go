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
		n, errno = RawRead(int(fd), p)
		return errno != unix.EAGAIN
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
		var n int
		n, errno = RawWrite(int(fd), p[done:])
		done += n
		return errno != unix.EAGAIN
	})
	if err == nil && errno != 0 {
		err = c.opError("write", errno)
	}
	return done, err
}

func (c *conn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
}

// RawRead is a read(2) of up to maxRaw bytes on the non-blocking socket fd,
// made without telling the scheduler and retried on EINTR. A zero Errno with
// n == 0 is the end of the stream; EAGAIN means nothing to read yet.
func RawRead(fd int, p []byte) (n int, errno syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	if len(p) > maxRaw {
		p = p[:maxRaw]
	}
	for {
		r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != unix.EINTR {
			if e != 0 {
				return 0, e
			}
			return int(r), 0
		}
	}
}

// RawWrite writes p to the non-blocking socket fd with write(2) calls of up
// to maxRaw bytes each, made without telling the scheduler, until all of p
// is written or a call fails (EINTR is retried). It returns the bytes
// written; EAGAIN means the socket is full and the rest has to wait.
func RawWrite(fd int, p []byte) (n int, errno syscall.Errno) {
	for n < len(p) {
		q := p[n:]
		if len(q) > maxRaw {
			q = q[:maxRaw]
		}
		r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&q[0])), uintptr(len(q)))
		switch e {
		case 0:
			n += int(r)
		case unix.EINTR:
		default:
			return n, e
		}
	}
	return n, 0
}
