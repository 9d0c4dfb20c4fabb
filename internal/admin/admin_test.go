package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/ui"
)

// fakeRepairs is anti-entropy that is running, or not (off).
type fakeRepairs struct {
	off     bool
	started int
	roots   bool // withRoots of the last status asked
}

var errNotRunning = errors.New("anti-entropy not running")

func (f *fakeRepairs) Repair() (uint64, error) {
	if f.off {
		return 0, errNotRunning
	}
	f.started++
	return uint64(f.started), nil
}

func (f *fakeRepairs) RepairStatus(withRoots bool) (apitypes.RepairStatus, error) {
	if f.off {
		return apitypes.RepairStatus{}, errNotRunning
	}
	f.roots = withRoots
	st := apitypes.RepairStatus{Node: "n1", TreeReady: true, LastFullPass: 1700000000}
	if f.started > 0 {
		st.Repair = &apitypes.RepairProgress{ID: uint64(f.started), State: "queued"}
	}
	if withRoots {
		st.Ranges = []apitypes.RangeRoot{{Start: 1, End: 2, Replicas: []string{"n1", "n2"}, Root: 3}}
	}
	return st, nil
}

// fakeNode mounts the endpoints over fixed answers; hotN records the n the
// hot keys were asked for.
func fakeNode(t *testing.T, rep *fakeRepairs, hotN *int) http.Handler {
	t.Helper()
	mux := http.NewServeMux()
	Mount(mux, Node{
		Cluster: func() apitypes.ClusterStatus {
			return apitypes.ClusterStatus{Self: "n1", Replicas: 3, Ready: "ready", Nodes: []apitypes.NodeStatus{{ID: "n1", Up: true, State: "normal"}}}
		},
		Clock: func() apitypes.ClockStatus {
			return apitypes.ClockStatus{OffsetMS: -3, ThresholdMS: 400, MaxClockSkewMS: 500, Peers: []apitypes.PeerClockStatus{{Peer: "n2", OffsetMS: -3, UncertaintyMS: 1}}}
		},
		HotKeys: func(n int) apitypes.HotKeysReport {
			*hotN = n
			return apitypes.HotKeysReport{Node: "n1", Window: "10s", CacheTTL: "0s", Keys: []apitypes.KeyRate{{Key: "a", Rate: 5, Share: 1}}}
		},
		Repairs: rep,
		Overview: func(context.Context) ui.Overview {
			return ui.Overview{Stats: map[string]ui.PeerStats{"n1": {Reachable: true}}, Ring: []ui.RingArc{}, EverySeconds: 2}
		},
	})
	return mux
}

func do(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

// The bodies are the ones `ringkv status`, `ringkv hotkeys`, `ringkv repair`
// and the dashboard decode, byte for byte: the status endpoints a person
// reads with curl indented, the others not.
func TestEndpointBodies(t *testing.T) {
	var hotN int
	h := fakeNode(t, &fakeRepairs{}, &hotN)
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/v1/cluster", `{
  "self": "n1",
  "nodes": [
    {
      "id": "n1",
      "client_addr": "",
      "peer_addr": "",
      "http_addr": "",
      "gossip_addr": "",
      "zone": "",
      "up": true,
      "state": "normal",
      "ownership": 0,
      "hints": 0
    }
  ],
  "replicas": 3,
  "vnodes": 0,
  "last_repair_pass": 0,
  "ready": "ready",
  "version": "",
  "commit": "",
  "build_date": ""
}
`},
		{"GET", "/v1/clock", `{"skewed":false,"offset_ms":-3,"threshold_ms":400,"max_clock_skew_ms":500,"guard_refused":0,"peers":[{"peer":"n2","offset_ms":-3,"uncertainty_ms":1}]}` + "\n"},
		{"GET", "/v1/hotkeys", `{
  "node": "n1",
  "window": "10s",
  "rate": 0,
  "min_rate": 0,
  "cache_ttl": "0s",
  "keys": [
    {
      "key": "a",
      "rate": 5,
      "share": 1,
      "hot": false
    }
  ]
}
`},
		{"GET", "/v1/ui/overview", `{"cluster":{"self":"","nodes":null,"replicas":0,"vnodes":0,"last_repair_pass":0,"ready":"","version":"","commit":"","build_date":""},"stats":{"n1":{"reachable":true}},"ring":[],"every_seconds":2}` + "\n"},
		{"GET", "/v1/repair/status", `{
  "node": "n1",
  "tree_ready": true,
  "last_full_pass": 1700000000
}
`},
	} {
		rec := do(h, tc.method, tc.path)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != tc.want {
			t.Errorf("%s %s: %d %q\n%s\nwant\n%s", tc.method, tc.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body, tc.want)
		}
	}
	if rec := do(h, "GET", "/v1/ui/overview"); rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("overview cached: %q", rec.Header().Get("Cache-Control"))
	}
}

// ?n= picks how many hot keys; anything but a non-negative number is a 400
// with the JSON error body.
func TestHotKeysCount(t *testing.T) {
	hotN := -1
	h := fakeNode(t, &fakeRepairs{}, &hotN)
	if rec := do(h, "GET", "/v1/hotkeys?n=2"); rec.Code != http.StatusOK || hotN != 2 {
		t.Fatalf("?n=2: %d, asked for %d", rec.Code, hotN)
	}
	if do(h, "GET", "/v1/hotkeys"); hotN != 0 {
		t.Fatalf("no n: asked for %d, want 0 (all)", hotN)
	}
	for _, q := range []string{"-1", "x"} {
		rec := do(h, "GET", "/v1/hotkeys?n="+q)
		want := `{
  "error": "n=\"` + q + `\": want a non-negative number of keys",
  "code": "BADREQUEST"
}
`
		if rec.Code != http.StatusBadRequest || rec.Body.String() != want {
			t.Fatalf("?n=%s: %d %s", q, rec.Code, rec.Body)
		}
	}
}

// POST /v1/repair starts a repair and answers its progress; ?roots=true adds
// the ranges' roots; both are 503 while anti-entropy is not running.
func TestRepairEndpoints(t *testing.T) {
	rep := &fakeRepairs{}
	var hotN int
	h := fakeNode(t, rep, &hotN)
	rec := do(h, "POST", "/v1/repair")
	if rec.Code != http.StatusOK || rep.started != 1 || !strings.Contains(rec.Body.String(), `"repair": {
    "id": 1,
    "state": "queued"`) || rep.roots {
		t.Fatalf("POST /v1/repair: %d %s", rec.Code, rec.Body)
	}
	rec = do(h, "GET", "/v1/repair/status?roots=true")
	if rec.Code != http.StatusOK || !rep.roots || !strings.Contains(rec.Body.String(), `"root": 3`) {
		t.Fatalf("GET ?roots=true: %d %s", rec.Code, rec.Body)
	}
	rep.off = true
	for _, method := range []string{"POST", "GET"} {
		path := map[string]string{"POST": "/v1/repair", "GET": "/v1/repair/status"}[method]
		if rec := do(h, method, path); rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "anti-entropy not running\n" {
			t.Fatalf("%s %s while not running: %d %q", method, path, rec.Code, rec.Body)
		}
	}
	if rep.started != 1 {
		t.Fatal("a repair started while anti-entropy was not running")
	}
}

// /ui redirects to the page, which the dashboard's files serve.
func TestDashboardPage(t *testing.T) {
	var hotN int
	h := fakeNode(t, &fakeRepairs{}, &hotN)
	if rec := do(h, "GET", "/ui"); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("GET /ui: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := do(h, "GET", "/ui/"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<html") {
		t.Fatalf("GET /ui/: %d", rec.Code)
	}
}
