package clock

import (
	"fmt"
	"sync/atomic"
	"time"
)

// JumpDetector notices at once that the wall clock stepped, by the gap
// between the wall clock and the monotonic one, which a step does not move:
// a node whose clock jumps ahead then refuses writes from its first one,
// instead of stamping versions in its peers' future until its next offset
// measurement (a second later). Those versions are refused by the peers but
// kept by the node's own replica, where its reads would return them until
// the measurement hid them again: a read going back in time.
//
// It is armed with the gap at a moment the clock agreed with the peers', and
// disarmed (never refusing) when there are no peers to agree with. It is
// safe for concurrent use.
type JumpDetector struct {
	threshold time.Duration
	// base is wall minus Mono, in ns, when last armed; 0 when disarmed.
	base atomic.Int64
}

// NewJumpDetector returns a disarmed detector that reports steps larger
// than threshold.
func NewJumpDetector(threshold time.Duration) *JumpDetector {
	return &JumpDetector{threshold: threshold}
}

// Gap returns wall's reading less the monotonic clock's: constant while the
// wall clock runs at the monotonic clock's rate.
func Gap(wall Clock) int64 { return wall.Now().UnixNano() - int64(Mono()) }

// Arm records gap (see Gap) as the reading of a clock known to be right.
func (j *JumpDetector) Arm(gap int64) {
	if gap == 0 {
		gap = 1 // 0 means disarmed
	}
	j.base.Store(gap)
}

// Disarm stops the detector reporting anything.
func (j *JumpDetector) Disarm() { j.base.Store(0) }

// Jumped returns how far the wall clock stepped since Arm, when further than
// the threshold; 0 otherwise, and always when disarmed.
func (j *JumpDetector) Jumped(wall Clock) time.Duration {
	if j.base.Load() == 0 {
		return 0 // no clock reading for a disarmed detector
	}
	return j.JumpedAt(wall, Mono())
}

// JumpedAt is Jumped for a caller that has just read the monotonic clock
// (mono, from Mono), which saves a reading on the write path.
func (j *JumpDetector) JumpedAt(wall Clock, mono time.Duration) time.Duration {
	b := j.base.Load()
	if b == 0 {
		return 0
	}
	d := time.Duration(wall.Now().UnixNano() - int64(mono) - b)
	if abs(d) <= j.threshold {
		return 0
	}
	return d
}

// JumpErr is the error a write gets when the clock stepped by d.
func JumpErr(d time.Duration) error {
	dir := "ahead"
	if d < 0 {
		dir, d = "back", -d
	}
	return fmt.Errorf("%w: this node's clock jumped %s %s since it last agreed with its peers; not accepting writes", ErrSkewed, Round(d), dir)
}
