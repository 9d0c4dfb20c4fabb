package rebalance

import "golang.org/x/time/rate"

// newLimiter paces streaming to a byte rate shared by all of a node's pulls:
// each page waits as long as the previous ones' bytes are worth at the rate.
// A page is charged once received, so the burst holds the largest page.
// A rate <= 0 means unlimited.
func newLimiter(bytesPerSec int64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(bytesPerSec), int(max(bytesPerSec, maxPageBytes)))
}
