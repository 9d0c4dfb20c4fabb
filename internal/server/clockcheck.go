package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/ringkv/ringkv/internal/httpapi"
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
	return s.diskGuard(w)
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

// ClockStatus is the JSON answer of GET /v1/clock, which `ringkv status`
// shows.
type ClockStatus struct {
	// Skewed: this node's clock is off from a majority of its peers' and it
	// refuses to coordinate writes; Error says so in words.
	Skewed bool   `json:"skewed"`
	Error  string `json:"error,omitempty"`
	// OffsetMS is how far this node's clock is ahead of its peers' (the
	// median; negative: behind).
	OffsetMS int64 `json:"offset_ms"`
	// ThresholdMS is the offset beyond which the node stops coordinating
	// writes; MaxClockSkewMS the guard on stored versions.
	ThresholdMS    int64 `json:"threshold_ms"`
	MaxClockSkewMS int64 `json:"max_clock_skew_ms"`
	// GuardRefused counts the records refused as too far in the future.
	GuardRefused uint64            `json:"guard_refused"`
	Peers        []PeerClockStatus `json:"peers"`
}

// PeerClockStatus is the offset of this node's clock from one peer's.
type PeerClockStatus struct {
	Peer          string `json:"peer"`
	OffsetMS      int64  `json:"offset_ms"`
	UncertaintyMS int64  `json:"uncertainty_ms"`
}

// ClockStatus returns this node's view of its clock.
func (s *Server) ClockStatus() ClockStatus {
	st := ClockStatus{
		MaxClockSkewMS: s.cfg.MaxClockSkew.Milliseconds(),
		GuardRefused:   s.guard.Refused(),
		Peers:          []PeerClockStatus{},
	}
	if s.clock == nil {
		return st
	}
	st.ThresholdMS = s.clock.Threshold().Milliseconds()
	a := s.clock.State()
	st.Skewed, st.OffsetMS = a.Skewed, a.Offset.Milliseconds()
	if err := a.Err(); err != nil {
		st.Error = err.Error()
	}
	for _, p := range a.Peers {
		st.Peers = append(st.Peers, PeerClockStatus{Peer: p.Peer, OffsetMS: p.Offset.Milliseconds(), UncertaintyMS: ms(p.Uncertainty)})
	}
	return st
}

// ms rounds up, so that a sub-millisecond uncertainty does not read as none.
func ms(d time.Duration) int64 { return int64((d + time.Millisecond - 1) / time.Millisecond) }

func (s *Server) mountClock(api *httpapi.API) {
	api.Handle("GET /v1/clock", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(s.ClockStatus()); err != nil {
			s.log.Debug("writing clock status", "err", err)
		}
	}))
}
