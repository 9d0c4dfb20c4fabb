package storage

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleLogger routes Pebble's printf-style logging to slog. Pebble's Info
// lines (WAL recovery, table stats) matter only when debugging, so they go to
// Debug and keep a healthy node's log quiet.
type pebbleLogger struct {
	log *slog.Logger
}

var _ pebble.Logger = pebbleLogger{}

func (l pebbleLogger) Infof(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

// Fatalf must not return: Pebble calls it when its state can no longer be
// trusted (a failed WAL commit, say) and carries on as if the process ended.
// A panic still stops the process but keeps the stack for the crash report.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "fatal", true)
	panic("storage: pebble fatal error: " + msg)
}

// eventListener reports the Pebble events an operator must see. The rest
// (flushes, compactions) is visible through Metrics. lower, when set, runs at
// the start of every flush and compaction, on the job's own goroutine.
func eventListener(log *slog.Logger, lower func()) *pebble.EventListener {
	l := &pebble.EventListener{
		BackgroundError: func(err error) {
			log.Error("pebble background error", "err", err)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			log.Warn("pebble write stall began", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			log.Info("pebble write stall ended")
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			log.Warn("pebble disk slow", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
		},
	}
	if lower != nil {
		l.FlushBegin = func(pebble.FlushInfo) { lower() }
		l.CompactionBegin = func(pebble.CompactionInfo) { lower() }
	}
	return l
}

// lowerBackgroundJob moves the flush or compaction that calls it to a thread
// of the lowest CPU priority (see lowerThreadPriority).
func (e *pebbleEngine) lowerBackgroundJob() {
	if err := lowerThreadPriority(); err != nil {
		if e.counters.bgLowerErrors.Add(1) == 1 {
			e.log.Warn("Pebble's flushes and compactions run at the node's CPU priority", "err", err)
		}
		return
	}
	e.counters.bgLowered.Add(1)
}
