package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/ringkv/ringkv/internal/httpapi"
)

// maxDebugClockOffset bounds the skew a test may set: beyond a day the HLC's
// physical part, TTL deadlines and tombstone GC stop meaning anything, and no
// scenario needs more than a few times --max-clock-skew.
const maxDebugClockOffset = 24 * time.Hour

// clockOffsetBody is the JSON answer of /debug/clock-offset.
type clockOffsetBody struct {
	// Offset is the current skew in Go duration syntax ("250ms", "-1s").
	Offset string `json:"offset"`
	// OffsetMS is the same skew in milliseconds, for scripts.
	OffsetMS int64 `json:"offset_ms"`
	// Now is this node's skewed wall clock in unix ms.
	Now int64 `json:"now_ms"`
}

// mountDebug mounts the test-only controls when --debug-endpoints is set. The
// clock offset exists because the kernel cannot skew one process's clock: the
// fault suite moves a node's wall clock (HLC, TTL checks, GC) through it.
func (s *Server) mountDebug(api *httpapi.API) {
	if !s.cfg.DebugEndpoints {
		return
	}
	// Behind the guard these need the admin right; with authentication off
	// (loopback, or --insecure) anyone who reaches the port has it.
	s.log.Warn("debug endpoints enabled: a user with the admin right can skew this node's clock")
	api.Handle("GET /debug/clock-offset", http.HandlerFunc(s.handleClockOffset))
	api.Handle("POST /debug/clock-offset", http.HandlerFunc(s.handleClockOffset))
	api.Handle("POST /debug/disk-reserve", http.HandlerFunc(s.handleDiskReserve))
}

// handleClockOffset answers the current offset; a POST with ?d=<duration>
// sets it first.
func (s *Server) handleClockOffset(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			http.Error(w, fmt.Sprintf("debug: d: %v (want a duration such as 250ms or -1s)", err), http.StatusBadRequest)
			return
		}
		if d > maxDebugClockOffset || d < -maxDebugClockOffset {
			http.Error(w, fmt.Sprintf("debug: d: %v is beyond ±%v", d, maxDebugClockOffset), http.StatusBadRequest)
			return
		}
		s.wall.Set(d)
		s.guard.Refresh() // its cached bound was taken on the old clock
		s.log.Warn("clock offset changed by debug endpoint", "offset", d)
	}
	off := s.wall.Get()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(clockOffsetBody{
		Offset: off.String(), OffsetMS: off.Milliseconds(), Now: s.wall.Now().UnixMilli(),
	})
}
