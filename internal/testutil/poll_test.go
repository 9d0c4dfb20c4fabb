package testutil

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	err := Poll(t.Context(), time.Millisecond, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil on the third", err, calls)
	}
}

func TestPollReturnsTheLastErrorWhenTheContextEnds(t *testing.T) {
	never := errors.New("never")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
	defer cancel()
	err := Poll(ctx, time.Millisecond, func() error { return never })
	if !errors.Is(err, never) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll = %v, want the condition's error and the deadline", err)
	}
}
