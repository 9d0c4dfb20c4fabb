package resp

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/sockio"
)

// loopsSupported: epoll is Linux's.
const loopsSupported = true

// eventLoop is one goroutine serving many connections through epoll.
type eventLoop struct {
	s    *Server
	ep   int // epoll
	wake int // eventfd: connections queued, or Shutdown
	// Only the loop's goroutine touches conns.
	conns map[int32]*conn
	done  chan struct{}

	mu    sync.Mutex
	queue []*conn // handed over by Serve, not yet watched
}

func newEventLoop(s *Server) (*eventLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(ep)
		unix.Close(wake)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return &eventLoop{
		s: s, ep: ep, wake: wake,
		conns: make(map[int32]*conn), done: make(chan struct{}),
	}, nil
}

// dupFD returns a close-on-exec duplicate of nc's socket, which shares its
// non-blocking mode; the caller closes nc, and the loop owns the duplicate.
func dupFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("resp: connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	return fd, derr
}

// add queues c for the loop. The caller holds s.mu, so a connection queued
// before Shutdown set closing is seen by the loop when it stops.
func (l *eventLoop) add(c *conn) {
	l.mu.Lock()
	l.queue = append(l.queue, c)
	l.mu.Unlock()
	l.wakeUp()
}

func (l *eventLoop) wakeUp() {
	var one [8]byte
	one[0] = 1 // eventfd counts in host order; every Linux port ringkv builds for is little-endian
	_, _ = unix.Write(l.wake, one[:])
}

func (l *eventLoop) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 128)
	every := sweepEvery(l.s.cfg.IdleTimeout, l.s.cfg.ReadTimeout)
	lastSweep := clock.Mono()
	for {
		n, err := unix.EpollWait(l.ep, events, int(every/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.s.log.Error("event loop: epoll_wait failed; its connections move to goroutines", "err", err)
			l.stop()
			return
		}
		alone := l.s.soloReader != nil && l.s.soloReader.ReadsAlone()
		now := clock.Mono()
		for i := range n {
			fd := events[i].Fd
			if int(fd) == l.wake {
				l.admit()
				continue
			}
			c := l.conns[fd]
			if c == nil {
				continue
			}
			c.loopSeen = now
			switch c.serveReady(alone) {
			case loopHandOff:
				l.handOff(c)
			case loopClose:
				l.close(c)
			}
		}
		if l.s.closing.Load() {
			l.stop()
			return
		}
		if now-lastSweep >= every {
			lastSweep = now
			l.sweep(now)
		}
	}
}

// admit starts watching the queued connections.
func (l *eventLoop) admit() {
	var buf [8]byte
	_, _ = unix.Read(l.wake, buf[:])
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	now := clock.Mono()
	for _, c := range q {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.io.fd)}
		if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, c.io.fd, &ev); err != nil {
			l.s.log.Warn("event loop: cannot watch a connection; it gets a goroutine", "err", err)
			l.toGoroutine(c)
			continue
		}
		l.conns[int32(c.io.fd)] = c
		c.loopSeen = now
		l.s.m.loopConns.Inc()
	}
}

// handOff moves c to its own goroutine, which goes on where the loop stopped.
func (l *eventLoop) handOff(c *conn) {
	l.forget(c)
	l.toGoroutine(c)
}

// toGoroutine wraps c's descriptor in a net.Conn and starts c's goroutine.
func (l *eventLoop) toGoroutine(c *conn) {
	f := os.NewFile(uintptr(c.io.fd), "")
	nc, err := net.FileConn(f)
	f.Close() // FileConn holds its own duplicate
	if err != nil {
		l.s.log.Warn("event loop: cannot hand a connection to a goroutine; closing it", "err", err)
		l.s.dropConn(c)
		return
	}
	l.s.mu.Lock()
	c.nc = nc
	l.s.mu.Unlock()
	c.io.nc, c.io.fd = sockio.Wrap(nc), -1
	go l.s.serveConn(c)
}

// close closes a connection whose client has gone or idled out.
func (l *eventLoop) close(c *conn) {
	fd := c.io.fd
	l.forget(c)
	unix.Close(fd)
	l.s.dropConn(c)
}

// forget stops watching c; its descriptor stays open.
func (l *eventLoop) forget(c *conn) {
	_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.io.fd, nil)
	delete(l.conns, int32(c.io.fd))
	l.s.m.loopConns.Dec()
}

// sweep closes the connections that sent nothing for IdleTimeout, and those
// whose command began to arrive ReadTimeout ago and is still not complete.
func (l *eventLoop) sweep(now time.Duration) {
	for _, c := range l.conns {
		switch {
		case c.partialSince != 0 && now-c.partialSince >= l.s.cfg.ReadTimeout:
			l.s.m.closed.WithLabelValues("read_timeout").Inc()
			l.s.sampled.readTimeout.log(l.s.log, slog.LevelInfo, "read timeout: a command took too long to arrive, closing connection",
				"client", c.raddr.String(), "id", c.id, "timeout", l.s.cfg.ReadTimeout, "buffered_bytes", c.rd.Buffered())
			l.close(c)
		case now-c.loopSeen >= l.s.cfg.IdleTimeout:
			l.s.m.closed.WithLabelValues("idle").Inc()
			l.s.log.Debug("idle timeout, closing connection", "client", c.raddr.String(), "id", c.id)
			l.close(c)
		}
	}
}

// stop hands every connection, queued ones included, to a goroutine, where
// Shutdown's closing flag makes it send its replies and close, and releases
// the loop's descriptors.
func (l *eventLoop) stop() {
	l.admit()
	for _, c := range l.conns {
		l.handOff(c)
	}
	unix.Close(l.ep)
	unix.Close(l.wake)
}

func readFD(fd int, p []byte) (int, error) {
	n, errno := sockio.RawRead(fd, p)
	switch errno {
	case 0:
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	case unix.EAGAIN:
		return 0, errWouldBlock
	}
	return 0, os.NewSyscallError("read", errno)
}

func writeFD(fd int, p []byte) (int, error) {
	n, errno := sockio.RawWrite(fd, p)
	switch errno {
	case 0:
		return n, nil
	case unix.EAGAIN:
		return n, errWouldBlock
	}
	return n, os.NewSyscallError("write", errno)
}
