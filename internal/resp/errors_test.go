package resp

import (
	"fmt"
	"testing"

	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
)

// TestErrorReplyOOM: a write refused for --max-memory gets Redis' reply
// word for word, however deep the coordinator wrapped it.
func TestErrorReplyOOM(t *testing.T) {
	const want = "OOM command not allowed when used memory > 'maxmemory'."
	for _, err := range []error{
		storage.ErrOutOfMemory,
		fmt.Errorf("replication: QUORUM write refused: %w", storage.ErrOutOfMemory),
	} {
		if got := errorReply(err); got != want {
			t.Errorf("errorReply(%v) = %q, want %q", err, got, want)
		}
	}
	if got := errorReply(fmt.Errorf("%w: x", replication.ErrTimeout)); got[:8] != "TIMEOUT " {
		t.Errorf("TIMEOUT reply changed: %q", got)
	}
}
