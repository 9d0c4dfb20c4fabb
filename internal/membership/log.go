package membership

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/internal/logsample"
)

// Sampling of memberlist's warnings: anyone who can send a UDP packet to
// the gossip port makes memberlist log an error (issue 30: one garbage
// packet, one ERROR line), so a flood of packets would be a flood of lines.
// Each kind of warning is logged at most once per badLogEvery, with the
// count of those left out; debug and info lines pass as they are.
const (
	badLogEvery = 10 * time.Second
	// badLogKinds bounds the kinds tracked, whatever text arrives.
	badLogKinds = 64
)

// logWriter turns memberlist's "[LEVEL] memberlist: message" lines into slog
// records at the matching level. slog.NewLogLogger alone would log them all
// at one level, burying memberlist's warnings among its debug chatter.
type logWriter struct {
	logger  *slog.Logger
	sampler *logsample.Keyed
	// bad counts warnings about what another host sent: memberlist tags
	// those with the sender's address (from=).
	bad atomic.Uint64
}

func newLogWriter(l *slog.Logger) *logWriter {
	return &logWriter{logger: l, sampler: logsample.NewKeyed(badLogEvery, badLogKinds)}
}

func (w *logWriter) Write(p []byte) (int, error) {
	msg := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG]", slog.LevelDebug},
		{"[INFO]", slog.LevelInfo},
		{"[WARN]", slog.LevelWarn},
		{"[ERR]", slog.LevelError},
		{"[ERROR]", slog.LevelError},
	} {
		if rest, ok := bytes.CutPrefix(msg, []byte(l.prefix)); ok {
			level, msg = l.level, bytes.TrimSpace(rest)
			break
		}
	}
	msg = bytes.TrimPrefix(msg, []byte("memberlist: "))
	if level < slog.LevelWarn {
		w.logger.Log(context.Background(), level, string(msg))
		return len(p), nil
	}
	text := string(msg)
	if strings.Contains(text, "from=") {
		w.bad.Add(1)
	}
	ok, suppressed := w.sampler.Allow(logKind(text))
	if !ok {
		return len(p), nil
	}
	if suppressed > 0 {
		w.logger.Log(context.Background(), level, text, "like_this_since_last_logged", suppressed)
	} else {
		w.logger.Log(context.Background(), level, text)
	}
	return len(p), nil
}

// logKind reduces a warning to its kind: the text before the sender's
// address and before the first colon (memberlist puts the error after it),
// without digits, so lines that differ only in their details share one.
func logKind(msg string) string {
	if i := strings.Index(msg, "from="); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.IndexByte(msg, ':'); i >= 0 {
		msg = msg[:i]
	}
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, msg)
}
