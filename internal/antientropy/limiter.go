package antientropy

import (
	"context"
	"sync"
	"time"
)

// limiter paces records to a rate with a virtual schedule: each call reserves
// its share of time after the previous reservation and sleeps until it starts.
// A burst of up to one second's worth runs at once after an idle spell.
type limiter struct {
	rate float64 // records per second; <= 0 is unlimited
	mu   sync.Mutex
	next time.Time
}

func (l *limiter) wait(ctx context.Context, n int) error {
	if l.rate <= 0 || n <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if earliest := now.Add(-time.Second); l.next.Before(earliest) {
		l.next = earliest
	}
	d := l.next.Sub(now)
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
