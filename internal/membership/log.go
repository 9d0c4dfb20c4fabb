package membership

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// logWriter turns memberlist's "[LEVEL] memberlist: message" lines into slog
// records at the matching level. slog.NewLogLogger alone would log them all
// at one level, burying memberlist's warnings among its debug chatter.
type logWriter struct{ logger *slog.Logger }

func newStdLogger(l *slog.Logger) *log.Logger { return log.New(logWriter{l}, "", 0) }

func (w logWriter) Write(p []byte) (int, error) {
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
	w.logger.Log(context.Background(), level, string(msg))
	return len(p), nil
}
