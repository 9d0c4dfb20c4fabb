package resp

import (
	"context"
	"log/slog"
	"time"

	"github.com/ringkv/ringkv/internal/logsample"
)

// sampleEvery is how often a line a client can provoke at will is logged.
const sampleEvery = 10 * time.Second

// sampledLog logs one kind of event at most once per sampleEvery, with the
// count of those not logged since: a client that provokes it in a loop
// (failed handshakes, malformed input, stalled commands) must not flood the
// log, while the first one still shows at once.
type sampledLog struct{ s *logsample.Sampler }

func (s sampledLog) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	if !l.Enabled(context.Background(), level) {
		return
	}
	ok, dropped := s.s.Allow()
	if !ok {
		return
	}
	if dropped > 0 {
		args = append(args, "not_logged_since_last", int(dropped))
	}
	l.Log(context.Background(), level, msg, args...)
}

// sampledLogs are the server's sampled lines, one per kind of event.
type sampledLogs struct {
	tls, protocol, http, readTimeout sampledLog
}

func newSampledLogs() sampledLogs {
	n := func() sampledLog { return sampledLog{logsample.New(sampleEvery)} }
	return sampledLogs{tls: n(), protocol: n(), http: n(), readTimeout: n()}
}
