package storage

import (
	"sync"
	"sync/atomic"
)

// gate tracks calls in flight so Close can wait for them, because Pebble panics
// on use after close. Unlike a RWMutex it lets a call nest another (a Keyspace
// iteration that deletes what it visits, an OnApply hook that reads) while
// Close waits: the nested call gets ErrClosed instead of deadlocking behind
// the waiting Close.
type gate struct {
	// state is the number of calls in flight, plus closedBit once closing.
	state atomic.Int64
	// Every call writes state, so its cache line moves between cores on each
	// call; shut sits on a line of its own that is only written by close, so
	// a caller that just checks it (see closing) reads it from its own cache.
	_    [56]byte
	shut atomic.Bool
	done chan struct{}
	once sync.Once
}

const closedBit = 1 << 62

func newGate() *gate { return &gate{done: make(chan struct{})} }

// enter admits a call; it returns false once the gate is closing.
func (g *gate) enter() bool {
	if g.state.Add(1)&closedBit != 0 {
		g.exit()
		return false
	}
	return true
}

// exit ends a call admitted by enter (or refused inside it).
func (g *gate) exit() {
	if g.state.Add(-1) == closedBit {
		g.once.Do(func() { close(g.done) })
	}
}

// closing reports whether close has begun. A caller that checks it instead of
// entering is not waited for by close, so it must not touch what close tears
// down.
func (g *gate) closing() bool { return g.shut.Load() }

// close refuses new calls and waits for those in flight. It returns false if
// the gate was already closed. It must not be called from inside a call.
func (g *gate) close() bool {
	g.shut.Store(true)
	old := g.state.Or(closedBit)
	if old&closedBit != 0 {
		return false
	}
	if old == 0 {
		g.once.Do(func() { close(g.done) })
	}
	<-g.done
	return true
}
