// Package logsample keeps a flood of identical warnings from becoming a flood
// of log lines. Input an attacker controls (garbage packets, refused
// handshakes) must not cost a log line each: the disk fills and the lines
// that matter scroll away. A Sampler lets the first event of an interval
// through and counts the rest, so the next line that goes out says how many
// were left out.
package logsample

import (
	"sync"
	"time"
)

// Sampler allows one event per Interval. The zero value is not usable; use New.
type Sampler struct {
	interval time.Duration
	now      func() time.Time

	mu         sync.Mutex
	next       time.Time
	suppressed uint64
}

// New returns a Sampler that lets one event through per interval.
func New(interval time.Duration) *Sampler {
	return &Sampler{interval: interval, now: time.Now}
}

// NewClocked is New reading the time from now, for a caller whose clock is
// not the wall's (a test's).
func NewClocked(interval time.Duration, now func() time.Time) *Sampler {
	return &Sampler{interval: interval, now: now}
}

// Allow reports whether this event should be logged, and when it should, how
// many events were held back since the last one that was.
func (s *Sampler) Allow() (ok bool, suppressed uint64) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.next) {
		s.suppressed++
		return false, 0
	}
	s.next = now.Add(s.interval)
	n := s.suppressed
	s.suppressed = 0
	return true, n
}

// Keyed holds one Sampler per kind of event, so that a flood of one kind
// does not hide the first line of another. It tracks at most maxKeys kinds;
// past that every new kind shares one overflow sampler, which keeps its
// memory bounded whatever the input.
type Keyed struct {
	interval time.Duration
	maxKeys  int

	mu       sync.Mutex
	byKey    map[string]*Sampler
	overflow *Sampler
}

// NewKeyed returns a Keyed sampler of at most maxKeys kinds.
func NewKeyed(interval time.Duration, maxKeys int) *Keyed {
	return &Keyed{interval: interval, maxKeys: maxKeys, byKey: map[string]*Sampler{}, overflow: New(interval)}
}

// Allow is Sampler.Allow for the kind key.
func (k *Keyed) Allow(key string) (ok bool, suppressed uint64) {
	k.mu.Lock()
	s := k.byKey[key]
	if s == nil {
		if len(k.byKey) < k.maxKeys {
			s = New(k.interval)
			k.byKey[key] = s
		} else {
			s = k.overflow
		}
	}
	k.mu.Unlock()
	return s.Allow()
}
