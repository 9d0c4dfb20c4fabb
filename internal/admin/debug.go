package admin

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"time"
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

// SkewableClock is the node's wall clock with the offset a test sets.
type SkewableClock interface {
	Get() time.Duration
	Set(d time.Duration)
	Now() time.Time
}

// DiskReserve is the data disk's monitor, whose reserve a test raises past
// the free space to make the disk full.
type DiskReserve interface {
	// SetReserve sets the reserve, 0 restoring the configured one.
	SetReserve(n uint64)
	Reserve() uint64
	Free() uint64
	Full() bool
}

// Debug is what the debug endpoints act on.
type Debug struct {
	Logger *slog.Logger
	Clock  SkewableClock
	// Disk is nil on a node that watches no data disk (in-memory).
	Disk DiskReserve
}

// MountDebug mounts the test-only controls and Go's profiler; the server
// does when --debug-endpoints is set. The clock offset exists because the
// kernel cannot skew one process's clock: the fault suite moves a node's
// wall clock (HLC, TTL checks, GC) through it. Behind the guard these need
// the admin right; with authentication off (loopback, or --insecure) anyone
// who reaches the port has it.
func MountDebug(m Mux, d Debug) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	d.Logger.Warn("debug endpoints enabled: a user with the admin right can skew this node's clock")
	m.Handle("GET /debug/clock-offset", http.HandlerFunc(d.handleClockOffset))
	m.Handle("POST /debug/clock-offset", http.HandlerFunc(d.handleClockOffset))
	m.Handle("POST /debug/disk-reserve", http.HandlerFunc(d.handleDiskReserve))
	mountPprof(m)
}

// handleClockOffset answers the current offset; a POST with ?d=<duration>
// sets it first.
func (d Debug) handleClockOffset(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		off, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			http.Error(w, fmt.Sprintf("debug: d: %v (want a duration such as 250ms or -1s)", err), http.StatusBadRequest)
			return
		}
		if off > maxDebugClockOffset || off < -maxDebugClockOffset {
			http.Error(w, fmt.Sprintf("debug: d: %v is beyond ±%v", off, maxDebugClockOffset), http.StatusBadRequest)
			return
		}
		d.Clock.Set(off)
		d.Logger.Warn("clock offset changed by debug endpoint", "offset", off)
	}
	off := d.Clock.Get()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(clockOffsetBody{
		Offset: off.String(), OffsetMS: off.Milliseconds(), Now: d.Clock.Now().UnixMilli(),
	})
}

// handleDiskReserve sets the disk reserve to ?bytes=N, 0 restoring the
// configured one: the fault suite makes a node's disk full by raising it
// past the free space, since it cannot fill a container's real disk without
// filling the host's.
func (d Debug) handleDiskReserve(w http.ResponseWriter, r *http.Request) {
	if d.Disk == nil {
		http.Error(w, "debug: this node does not watch a data disk (in-memory)", http.StatusConflict)
		return
	}
	n, err := strconv.ParseUint(r.URL.Query().Get("bytes"), 10, 63)
	if err != nil {
		http.Error(w, fmt.Sprintf("debug: bytes: %v", err), http.StatusBadRequest)
		return
	}
	d.Disk.SetReserve(n)
	d.Logger.Warn("disk reserve changed by debug endpoint", "reserve_bytes", d.Disk.Reserve())
	fmt.Fprintf(w, "reserve %d bytes, free %d bytes, full %t\n", d.Disk.Reserve(), d.Disk.Free(), d.Disk.Full())
}

// mountPprof serves Go's profiler under /debug/pprof/: profiles are how the
// hot paths were found (docs/performance.md), and they must come from a
// real process under a real load.
func mountPprof(m Mux) {
	m.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
	m.Handle("GET /debug/pprof/cmdline", http.HandlerFunc(handleCmdline))
	m.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	m.Handle("GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
	m.Handle("GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace))
}

// handleCmdline is pprof's cmdline with secrets redacted: a --password on
// the command line must not be served even to an admin, who has other ways
// to act but no need to learn the default user's password.
func handleCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(strings.Join(redactArgs(os.Args), "\x00")))
}

// secretFlags are the flags whose values are secrets.
var secretFlags = []string{"password"}

const redacted = "REDACTED"

// redactArgs returns args with the values of secretFlags replaced, in every
// spelling pflag accepts: --password x, --password=x, -password x.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		name := strings.TrimLeft(out[i], "-")
		if name == out[i] || out[i] == "--" {
			continue
		}
		for _, f := range secretFlags {
			switch {
			case name == f && i+1 < len(out):
				out[i+1] = redacted
				i++
			case strings.HasPrefix(name, f+"="):
				out[i] = out[i][:len(out[i])-len(name)] + f + "=" + redacted
			}
		}
	}
	return out
}
