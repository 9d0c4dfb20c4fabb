// Package clock holds ringkv's notion of time: an injectable wall clock, so tests
// can move time or skew one node, and the hybrid logical clock (HLC) that stamps
// every write with a version that is monotonic on a node and close to real time
// across nodes.
package clock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock tells the wall time. Implementations must be safe for concurrent use.
type Clock interface {
	Now() time.Time
}

// System is the real wall clock.
type System struct{}

// Now returns time.Now.
func (System) Now() time.Time { return time.Now() }

// Offset is a wall clock shifted by a fixed, adjustable amount. The fault suite
// uses it to skew one process, since the kernel cannot skew a single process.
// Every request reads it, from every core: the offset is an atomic, not a
// lock, because a reader-writer lock's reader count is one cache line that
// each read writes.
type Offset struct {
	Base Clock
	off  atomic.Int64 // a time.Duration
}

// NewOffset returns a clock that reads base shifted by off.
func NewOffset(base Clock, off time.Duration) *Offset {
	o := &Offset{Base: base}
	o.off.Store(int64(off))
	return o
}

// Now returns the base time plus the current offset.
func (o *Offset) Now() time.Time { return o.Base.Now().Add(o.Get()) }

// Set changes the offset.
func (o *Offset) Set(off time.Duration) { o.off.Store(int64(off)) }

// Get returns the current offset.
func (o *Offset) Get() time.Duration { return time.Duration(o.off.Load()) }

// Manual is a clock that only moves when told to; for tests.
type Manual struct {
	mu  sync.Mutex
	now time.Time
}

// NewManual returns a manual clock reading t.
func NewManual(t time.Time) *Manual { return &Manual{now: t} }

// Now returns the clock's current reading.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Advance moves the clock forward by d.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	m.now = m.now.Add(d)
	m.mu.Unlock()
}

// Set moves the clock to t.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	m.now = t
	m.mu.Unlock()
}

// start anchors Mono.
var start = time.Now()

// Mono reads the monotonic clock alone, as time since the process started:
// the base for measuring how long something took. time.Now reads the wall
// clock too, and on the request path that second read was measurable.
func Mono() time.Duration { return time.Since(start) }
