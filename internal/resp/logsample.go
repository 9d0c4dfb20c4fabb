package resp

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
)

// sampleEvery is how often a line a client can provoke at will is logged.
const sampleEvery = 10 * time.Second

// sampledLog logs one kind of event at most once per sampleEvery, with the
// count of those not logged since: a client that provokes it in a loop
// (failed handshakes, malformed input, stalled commands) must not flood the
// log, while the first one still shows at once.
type sampledLog struct {
	mu      sync.Mutex
	next    time.Duration // clock.Mono
	dropped int
}

func (s *sampledLog) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	if !l.Enabled(context.Background(), level) {
		return
	}
	now := clock.Mono()
	s.mu.Lock()
	if now < s.next {
		s.dropped++
		s.mu.Unlock()
		return
	}
	dropped := s.dropped
	s.dropped, s.next = 0, now+sampleEvery
	s.mu.Unlock()
	if dropped > 0 {
		args = append(args, "not_logged_since_last", dropped)
	}
	l.Log(context.Background(), level, msg, args...)
}

// sampledLogs are the server's sampled lines, one per kind of event.
type sampledLogs struct {
	tls, protocol, http, readTimeout sampledLog
}
