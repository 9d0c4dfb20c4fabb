package server

import (
	"context"

	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
)

// storeGuard is storage's Options.Guard: every record any path stores (a
// client write, read repair, a hint, anti-entropy, a stream) passes the clock
// guard, so that no path lets in a version from the future that the others
// would refuse (issue 29: local read repair used to skip it). The disk guard
// follows, for the same reason: no path may write into the disk's reserve.
// Before both, the size limits (sizeGuard): a peer's write meets the ones a
// client's does.
func (s *Server) storeGuard(w storage.Guarded) error {
	if err := s.sizeGuard(w); err != nil {
		return err
	}
	if err := s.guard.Check(w.TS); err != nil {
		return err
	}
	// The disk's half: every write, whatever path brought it, while the
	// disk is full.
	return s.disk.Check(w.Bytes)
}

// startClockCheck starts measuring this node's clock against its peers'.
func (s *Server) startClockCheck() error {
	k, err := replication.NewClockCheck(replication.ClockCheckConfig{
		Logger: s.log, Registerer: s.reg,
	}, s.coord)
	if err != nil {
		return err
	}
	s.clock = k
	k.Start()
	return nil
}

func (s *Server) stopClockCheck(ctx context.Context) error {
	if s.clock == nil {
		return nil
	}
	return s.clock.Shutdown(ctx)
}

// clockReady is the readiness check of the clock: a node whose clock is off
// from its peers' refuses writes, so it is not ready, and says why.
func (s *Server) clockReady() error {
	if s.clock == nil {
		return nil
	}
	if err := s.clock.Err(); err != nil {
		return &notReady{reason: reasonClock, detail: err.Error()}
	}
	return nil
}
