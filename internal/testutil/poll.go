package testutil

import (
	"context"
	"fmt"
	"time"
)

// Poll calls cond every interval until it returns nil, or returns its last
// error, wrapped in ctx's, once ctx ends. It is Eventually for code that
// reports instead of failing a test: a harness's waits, bounded by the
// caller's context.
func Poll(ctx context.Context, every time.Duration, cond func() error) error {
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-time.After(every):
		}
	}
}
