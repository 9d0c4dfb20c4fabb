package rebalance

import (
	"context"
	"sync"
	"time"
)

// limiter paces streaming to a byte rate shared by all of a node's pulls. It
// charges after the fact: a page is received, then the next one waits as long
// as that page's bytes are worth at the rate. That lets one page burst, which
// a fixed page size bounds, and needs no knowledge of a page's size up front.
type limiter struct {
	rate float64 // bytes per second
	mu   sync.Mutex
	next time.Time // when the next page may start
}

func newLimiter(bytesPerSec int64) *limiter { return &limiter{rate: float64(bytesPerSec)} }

// wait blocks until the pace allows another page, then charges n bytes.
func (l *limiter) wait(ctx context.Context, n int) error {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	delay := l.next.Sub(now)
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
