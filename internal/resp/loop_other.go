//go:build !linux

package resp

import (
	"errors"
	"net"
)

// loopsSupported: the event loops use epoll; elsewhere every connection has a
// goroutine.
const loopsSupported = false

var errNoLoops = errors.New("resp: event loops need Linux")

type eventLoop struct{ done chan struct{} }

func newEventLoop(*Server) (*eventLoop, error) { return nil, errNoLoops }
func dupFD(net.Conn) (int, error)              { return -1, errNoLoops }
func (*eventLoop) add(*conn)                   {}
func (*eventLoop) wakeUp()                     {}
func (*eventLoop) run()                        {}
func readFD(int, []byte) (int, error)          { return 0, errNoLoops }
func writeFD(int, []byte) (int, error)         { return 0, errNoLoops }
