package sockio

import (
	"io"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxRaw bounds the bytes one raw call moves: 256 KiB take tens of µs to
// copy, about as long as the loopback write that made raw calls worth it.
const maxRaw = 256 << 10

// conn is a net.Conn whose Read and Write are raw calls on its socket.
//
// The functions handed to RawConn.Read and Write are bound once, in Wrap,
// and find their buffer and report their result in r and w: a closure over
// the call's locals moved three variables to the heap on every call, six
// allocations per request and reply. The mutexes keep concurrent Reads (or
// Writes), which net.Conn allows, from sharing r (or w); each direction has
// one caller at a time in ringkv, so they are never contended.
type conn struct {
	net.Conn
	rc syscall.RawConn

	rmu    sync.Mutex
	r      rawOp
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	w       rawOp
	writeFn func(fd uintptr) bool
}

// rawOp is one Read's or Write's buffer and outcome.
type rawOp struct {
	p     []byte
	n     int
	errno syscall.Errno
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
	c := &conn{Conn: nc, rc: rc}
	c.readFn, c.writeFn = c.rawRead, c.rawWrite
	return c
}

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.r = rawOp{p: p}
	err := c.rc.Read(c.readFn)
	n, errno := c.r.n, c.r.errno
	c.r.p = nil // not pinning the caller's buffer
	c.rmu.Unlock()
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

// rawRead runs under the socket's read lock, as often as the poller finds
// the socket readable, until it reads something other than EAGAIN.
func (c *conn) rawRead(fd uintptr) bool {
	c.r.n, c.r.errno = RawRead(int(fd), c.r.p)
	return c.r.errno != unix.EAGAIN
}

func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.w = rawOp{p: p}
	err := c.rc.Write(c.writeFn)
	done, errno := c.w.n, c.w.errno
	c.w.p = nil
	c.wmu.Unlock()
	if err == nil && errno != 0 {
		err = c.opError("write", errno)
	}
	return done, err
}

// rawWrite runs under the socket's write lock until all of w.p is written
// or a call fails with anything but EAGAIN; w.n counts what went out.
func (c *conn) rawWrite(fd uintptr) bool {
	var n int
	n, c.w.errno = RawWrite(int(fd), c.w.p[c.w.n:])
	c.w.n += n
	return c.w.errno != unix.EAGAIN
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
