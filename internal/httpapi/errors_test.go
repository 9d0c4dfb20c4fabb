package httpapi

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/diskspace"
	"github.com/ringkv/ringkv/internal/replication"
)

func TestClassifyDiskFull(t *testing.T) {
	full := &diskspace.FullError{Dir: "/data", Free: 1, Reserve: 2}
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("%w: write reached no replica: %w", replication.ErrUnavailable, full), http.StatusInsufficientStorage, apitypes.CodeDiskFull},
		{fmt.Errorf("commit: %w", syscall.ENOSPC), http.StatusInsufficientStorage, apitypes.CodeDiskFull},
		// A replica took the write: indeterminate comes first.
		{fmt.Errorf("%w: got 1 of 2 acks: %w", replication.ErrTimeout, full), http.StatusGatewayTimeout, apitypes.CodeTimeout},
		// A full node is not ready, which /readyz says as such.
		{fmt.Errorf("%w: %w", errNotReady, full), http.StatusServiceUnavailable, apitypes.CodeUnavailable},
	} {
		if status, code := classify(tc.err); status != tc.status || code != tc.code {
			t.Errorf("%v: %d %s, want %d %s", tc.err, status, code, tc.status, tc.code)
		}
	}
}
