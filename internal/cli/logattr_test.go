package cli

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/membership"
)

// TestLogsAgreeAcrossFormats: a membership state reads as its name in both
// formats, and a multi-line error stays on the event's one line.
func TestLogsAgreeAcrossFormats(t *testing.T) {
	joined := errors.Join(errors.New("dial n2: refused"), errors.New("dial n3: refused"))
	multi := errors.New("2 errors occurred:\n\t* Failed to join 10.0.0.2\n\t* Failed to join 10.0.0.3\n\n") //nolint:revive // memberlist's multi-line error, as it writes one
	for _, format := range []string{config.LogFormatText, config.LogFormatJSON} {
		var buf bytes.Buffer
		log := newLogger(&buf, format, slog.LevelInfo).With("node", "n1")
		log.Warn("no seed answered; retrying", "state", membership.Normal, "err", joined, "seeds_err", multi)
		out := buf.String()
		if n := strings.Count(out, "\n"); n != 1 {
			t.Errorf("%s: %d lines for one event:\n%s", format, n, out)
		}
		for _, want := range []string{"normal", "dial n2: refused; dial n3: refused", "2 errors occurred:; Failed to join 10.0.0.2; Failed to join 10.0.0.3"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: %q missing from %s", format, want, out)
			}
		}
		if format == config.LogFormatJSON && !strings.Contains(out, `"state":"normal"`) {
			t.Errorf("json: the state is not its name: %s", out)
		}
	}
}
