// Package testutil holds the helpers every package's tests share. It imports
// only the standard library, so any package's tests can use it without an
// import cycle.
package testutil

import (
	"testing"
	"time"
)

// DefaultPoll is how often Eventually asks again: often enough that a test
// waits little past the moment its condition holds, rarely enough that the
// polling itself does not load a shared machine.
const DefaultPoll = 10 * time.Millisecond

// Eventually calls f until it returns nil, and fails tb with f's last error
// when timeout passes first. It is for conditions that become true through
// other goroutines or processes (gossip converging, a hint replayed); the
// timeout bounds how long a broken build hangs, it asserts no latency.
func Eventually(tb testing.TB, timeout time.Duration, f func() error) {
	tb.Helper()
	EventuallyEvery(tb, timeout, DefaultPoll, f)
}

// EventuallyEvery is Eventually asking every interval, for a condition that
// is cheap and short-lived (poll often) or costly to check (poll rarely).
func EventuallyEvery(tb testing.TB, timeout, every time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not true after %v: %v", timeout, err)
			return // for a testing.TB whose Fatalf returns
		}
		time.Sleep(every)
	}
}
