package cli

import (
	"fmt"
	"log/slog"
	"strings"
)

// oneLineAttr makes the text and JSON logs say the same thing, one line per
// event: an error is its message with its line breaks folded (errors.Join
// and memberlist's multierror list one cause per line, which broke a retry
// warning over several log lines), and a value with a String method is that
// string (a membership state is "normal" in both formats, not a number in
// JSON).
func oneLineAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindAny {
		return a
	}
	switch v := a.Value.Any().(type) {
	case error:
		a.Value = slog.StringValue(oneLine(v.Error()))
	case fmt.Stringer:
		a.Value = slog.StringValue(oneLine(v.String()))
	}
	return a
}

// oneLine folds line breaks and the indentation after them into "; ".
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var parts []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, strings.TrimPrefix(l, "* "))
		}
	}
	return strings.Join(parts, "; ")
}
