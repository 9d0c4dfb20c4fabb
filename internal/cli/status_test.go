package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/apitypes"
)

const cannedCluster = `{
  "self": "node1",
  "nodes": [
    {"id":"node2","client_addr":"10.0.0.2:7379","peer_addr":"10.0.0.2:7380","http_addr":"10.0.0.2:8379",
     "gossip_addr":"10.0.0.2:7946","zone":"b","up":false,"state":"down","ownership":0.3333,"hints":42},
    {"id":"node1","client_addr":"10.0.0.1:7379","peer_addr":"10.0.0.1:7380","http_addr":"10.0.0.1:8379",
     "gossip_addr":"10.0.0.1:7946","zone":"","up":true,"state":"normal","ownership":0.6667,"hints":0}
  ],
  "replicas": 3,
  "vnodes": 64,
  "ready": "quorum: quorum unavailable for 64 of its 192 ranges"
}`

func clusterServer(tb testing.TB, status int, body string) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/cluster" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	tb.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestStatusTable(t *testing.T) {
	addr := clusterServer(t, http.StatusOK, cannedCluster)
	te := newTestEnv(t)
	if code := te.run(t.Context(), "status", "--addr", addr); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	lines := strings.Split(strings.TrimRight(te.stdout.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want summary, blank, header and 2 rows; got:\n%s", te.stdout.String())
	}
	if lines[0] != "nodes: 2 (1 up)   replicas: 3   vnodes: 64   as seen by: node1   readiness: quorum: quorum unavailable for 64 of its 192 ranges" {
		t.Fatalf("summary %q", lines[0])
	}
	header, row1, row2 := lines[2], lines[3], lines[4]
	for _, f := range []string{"ID", "STATE", "UP", "ZONE", "CLIENT", "HTTP", "PEER", "GOSSIP", "OWNERSHIP", "HINTS", "STREAMING"} {
		if !strings.Contains(header, f) {
			t.Errorf("header %q lacks %s", header, f)
		}
	}
	// Sorted by id, and aligned: every column starts at the same offset.
	if want := strings.Fields("node1 normal yes - 10.0.0.1:7379 10.0.0.1:8379 10.0.0.1:7380 10.0.0.1:7946 66.7% 0 -"); !reflect.DeepEqual(strings.Fields(row1), want) {
		t.Errorf("row 1 = %q, want fields %q", row1, want)
	}
	if want := strings.Fields("node2 down no b 10.0.0.2:7379 10.0.0.2:8379 10.0.0.2:7380 10.0.0.2:7946 33.3% 42 -"); !reflect.DeepEqual(strings.Fields(row2), want) {
		t.Errorf("row 2 = %q, want fields %q", row2, want)
	}
	for _, col := range []string{"STATE", "CLIENT", "OWNERSHIP", "HINTS"} {
		i := strings.Index(header, col)
		for _, row := range []string{row1, row2} {
			if i >= len(row) || row[i-1] != ' ' || row[i] == ' ' {
				t.Errorf("column %s (offset %d) not aligned in %q", col, i, row)
			}
		}
	}
}

func TestStatusJSON(t *testing.T) {
	addr := clusterServer(t, http.StatusOK, cannedCluster)
	te := newTestEnv(t)
	if code := te.run(t.Context(), "status", "--addr", "http://"+addr+"/", "-o", "json"); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	var got, want apitypes.ClusterStatus
	if err := json.Unmarshal([]byte(te.stdout.String()), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(cannedCluster), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("json output %+v, want %+v", got, want)
	}
}

func TestStatusErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		args       []string
		code       int
		want       string
	}{
		{"api error", `{"error":"not ready: joining","code":"UNAVAILABLE"}`, http.StatusServiceUnavailable, nil, exitError, "not ready: joining (UNAVAILABLE)"},
		{"not json", "<html>", http.StatusOK, nil, exitError, "ringkv HTTP address"},
		{"bad output", cannedCluster, http.StatusOK, []string{"-o", "yaml"}, exitUsage, "--output"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := clusterServer(t, tc.status, tc.body)
			te := newTestEnv(t)
			if code := te.run(t.Context(), append([]string{"status", "--addr", addr}, tc.args...)...); code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, te.stderr.String())
			}
			if !strings.Contains(te.stderr.String(), tc.want) {
				t.Fatalf("stderr %q lacks %q", te.stderr.String(), tc.want)
			}
		})
	}
}
