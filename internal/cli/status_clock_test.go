package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const cannedClock = `{"skewed":true,"error":"clock skew: this node's clock is 1h0m0s ahead of its peers; not accepting writes",
 "offset_ms":3600000,"threshold_ms":400,"max_clock_skew_ms":500,"guard_refused":3,
 "peers":[{"peer":"node2","offset_ms":3600000,"uncertainty_ms":1}]}`

func clockServer(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/cluster":
			_, _ = w.Write([]byte(cannedCluster))
		case "/v1/clock":
			_, _ = w.Write([]byte(cannedClock))
		default:
			http.NotFound(w, r)
		}
	}))
	tb.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestStatusShowsClock(t *testing.T) {
	addr := clockServer(t)
	te := newTestEnv(t)
	if code := te.run(t.Context(), "status", "--addr", addr); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	out := te.stdout.String()
	for _, want := range []string{
		"clock of node1: SKEWED, clock skew: this node's clock is 1h0m0s ahead of its peers; not accepting writes",
		"vs node2: +3600000ms ±1ms",
		"records refused as from the future: 3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}

	te = newTestEnv(t)
	if code := te.run(t.Context(), "status", "--addr", addr, "-o", "json"); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	var got struct {
		Self  string `json:"self"`
		Clock struct {
			Skewed   bool  `json:"skewed"`
			OffsetMS int64 `json:"offset_ms"`
		} `json:"clock"`
	}
	if err := json.Unmarshal([]byte(te.stdout.String()), &got); err != nil {
		t.Fatalf("%v: %s", err, te.stdout.String())
	}
	if got.Self != "node1" || !got.Clock.Skewed || got.Clock.OffsetMS != 3600000 {
		t.Fatalf("json status %+v", got)
	}
}
