package replication

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/diskspace"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/transport"
)

// TestWriteTally runs the cases of testdata/tally.txt: a write's level, its
// replicas, then one replica outcome a line, each followed by the verdict
// after it. Run with -rewrite to regenerate the expected output, then read
// the diff.
func TestWriteTally(t *testing.T) {
	outcomes := tallyOutcomes(t)
	datadriven.RunTest(t, "testdata/tally.txt", func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd != "write" {
			d.Fatalf(t, "unknown command %q", d.Cmd)
		}
		var level string
		var n, pending, down int
		d.ScanArgs(t, "level", &level)
		d.ScanArgs(t, "n", &n)
		d.MaybeScanArgs(t, "pending", &pending)
		d.MaybeScanArgs(t, "down", &down)
		lvl, err := ParseLevel(level)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		tally := newWriteTally(lvl, n, pending, n+pending-down)
		var out strings.Builder
		if err := tally.check(); err != nil {
			fmt.Fprintf(&out, "not sent: %s\n", verdict(err))
			return out.String()
		}
		fmt.Fprintf(&out, "sent to %d of %d, need %d: %s\n", tally.up, tally.n, tally.need, tallyState(&tally))
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			fields := strings.Fields(line)
			if len(fields) == 0 {
				continue
			}
			switch name := fields[0]; name {
			case "ack":
				tally.ack(nil)
			case "superseded":
				// superseded <ts>: an ack from a replica that held a
				// newer version, stamped at ts.
				if len(fields) != 2 {
					d.Fatalf(t, "superseded wants a timestamp: %q", line)
				}
				ts, err := strconv.ParseUint(fields[1], 10, 64)
				if err != nil {
					d.Fatalf(t, "%q: %v", line, err)
				}
				tally.ack(&record.Record{Version: record.Version{TS: clock.Timestamp(ts), Node: "n2"}})
			case "cancelled":
				tally.abandon(context.Canceled)
			case "timeout":
				tally.abandon(context.DeadlineExceeded)
			default:
				err, ok := outcomes[name]
				if !ok {
					d.Fatalf(t, "unknown outcome %q", name)
				}
				tally.fail(err)
			}
			fmt.Fprintf(&out, "%s: %s\n", line, tallyState(&tally))
		}
		return out.String()
	})
}

// tallyOutcomes are the replica failures the cases name, each the error the
// component that reports it really returns.
func tallyOutcomes(t *testing.T) map[string]error {
	t.Helper()
	net := transport.NewMemNetwork(1)
	tr := net.Listen("n1", func(context.Context, string, uint8, []byte) ([]byte, error) { return nil, nil })
	t.Cleanup(func() { tr.Close() })
	_, notSent := tr.Call(t.Context(), "n9", MethodApply, nil)
	if !transport.NotSent(notSent) {
		t.Fatalf("a call to an unknown peer: %v, want a request not sent", notSent)
	}
	return map[string]error{
		// The request never left this node.
		"notsent": notSent,
		// The replica's handler refused it (here its clock guard).
		"refused": &transport.RemoteError{Peer: "n2", Message: "clock: remote timestamp too far ahead of local wall clock"},
		// The local store's disk-space guard refused it.
		"diskfull": &diskspace.FullError{Dir: "/data", Free: 1 << 20, Reserve: 64 << 20},
		// The local store refused it for memory (--max-memory).
		"oom": storage.ErrOutOfMemory,
		// A replica kept a version from the future over it.
		"heldfuture": errHeldFuture,
		// The connection broke after the request was sent.
		"lost": fmt.Errorf("transport: n2: %w", transport.ErrConnectionLost),
		// The local store failed in a way that does not say it refused.
		"ioerror": errors.New("pebble: I/O error"),
	}
}

// tallyState is the tally's verdict: open with its counts, or done with its
// outcome.
func tallyState(t *writeTally) string {
	if !t.done() {
		return fmt.Sprintf("open, %d of %d acks, %d unanswered", t.acks, t.need, t.unanswered)
	}
	if err := t.err(); err != nil {
		return verdict(err)
	}
	if t.newer != nil {
		return fmt.Sprintf("OK, superseded at %d", uint64(t.newer.Version.TS))
	}
	return "OK"
}

// verdict names err's class, as a client sees it, and its text.
func verdict(err error) string {
	class := "ERROR"
	switch {
	case errors.Is(err, ErrTimeout):
		class = "TIMEOUT"
	case errors.Is(err, ErrUnavailable):
		class = "UNAVAILABLE"
	case errors.Is(err, storage.ErrOutOfMemory):
		class = "OOM"
	}
	return class + " (" + err.Error() + ")"
}
