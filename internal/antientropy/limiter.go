package antientropy

import (
	"context"

	"golang.org/x/time/rate"
)

// newLimiter paces repair to perSec records a second, with a burst of one
// second's worth after an idle spell; perSec <= 0 means unlimited (nil).
func newLimiter(perSec float64) *rate.Limiter {
	if perSec <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSec), max(int(perSec), 1))
}

// waitN blocks until n records may go; a batch larger than the burst is
// charged as a full burst, which a bounded batch size keeps rare.
func waitN(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	return l.WaitN(ctx, min(n, l.Burst()))
}
