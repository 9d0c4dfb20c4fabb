// Package clock holds ringkv's notion of time: an injectable wall clock, so tests
// can move time or skew one node, and the hybrid logical clock (HLC) that stamps
// every write with a version that is monotonic on a node and close to real time
// across nodes.
package clock

import (
	"sync"
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
type Offset struct {
	Base Clock
	mu   sync.RWMutex
	off  time.Duration
}

// NewOffset returns a clock that reads base shifted by off.
func NewOffset(base Clock, off time.Duration) *Offset {
	return &Offset{Base: base, off: off}
}

// Now returns the base time plus the current offset.
func (o *Offset) Now() time.Time {
	o.mu.RLock()
	off := o.off
	o.mu.RUnlock()
	return o.Base.Now().Add(off)
}

// Set changes the offset.
func (o *Offset) Set(off time.Duration) {
	o.mu.Lock()
	o.off = off
	o.mu.Unlock()
}

// Get returns the current offset.
func (o *Offset) Get() time.Duration {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.off
}

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
