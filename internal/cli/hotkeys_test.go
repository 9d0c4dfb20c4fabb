package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/apitypes"
)

const cannedHotKeys = `{
  "node": "node1", "window": "10s", "rate": 12345.6, "min_rate": 100, "cache_ttl": "50ms",
  "keys": [
    {"key": "user:42", "rate": 5000, "share": 0.405, "hot": true},
    {"key": "with space", "rate": 40.25, "share": 0.00326, "hot": false}
  ]
}`

func hotKeysServer(tb testing.TB, gotN *string) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/hotkeys" {
			http.NotFound(w, r)
			return
		}
		*gotN = r.URL.Query().Get("n")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(cannedHotKeys))
	}))
	tb.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestHotKeysTable(t *testing.T) {
	var n string
	addr := hotKeysServer(t, &n)
	te := newTestEnv(t)
	if code := te.run(t.Context(), "hotkeys", "--addr", addr, "-n", "5"); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	if n != "5" {
		t.Errorf("asked for n=%q, want 5", n)
	}
	lines := strings.Split(strings.TrimRight(te.stdout.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want summary, blank, header and 2 rows; got:\n%s", te.stdout.String())
	}
	if want := "node: node1   window: 10s   requests: 12346/s   hot at: 100/s   cache: ttl 50ms"; lines[0] != want {
		t.Errorf("summary %q\nwant    %q", lines[0], want)
	}
	for i, want := range [][]string{
		{"RANK", "KEY", "RATE/S", "SHARE", "HOT"},
		{"1", `"user:42"`, "5000", "40.50%", "yes"},
		{"2", `"with space"`, "40.2", "0.33%", "no"},
	} {
		if got := splitColumns(lines[2+i]); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("line %d: %q, want %q", 2+i, got, want)
		}
	}
}

// splitColumns splits a table line on its two-space column gaps.
func splitColumns(line string) []string {
	var cols []string
	for f := range strings.SplitSeq(line, "  ") {
		if f = strings.TrimSpace(f); f != "" {
			cols = append(cols, f)
		}
	}
	return cols
}

func TestHotKeysJSON(t *testing.T) {
	var n string
	addr := hotKeysServer(t, &n)
	te := newTestEnv(t)
	if code := te.run(t.Context(), "hotkeys", "--addr", addr, "-o", "json"); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	var rep apitypes.HotKeysReport
	if err := json.Unmarshal([]byte(te.stdout.String()), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Node != "node1" || len(rep.Keys) != 2 || rep.Keys[0].Key != "user:42" || n != "20" {
		t.Fatalf("%+v (n=%q)", rep, n)
	}
	// The table's HOT column, in the JSON too.
	if !rep.Keys[0].Hot || rep.Keys[1].Hot || !strings.Contains(te.stdout.String(), `"hot": true`) {
		t.Fatalf("hot missing or wrong in the JSON:\n%s", te.stdout.String())
	}
}

func TestHotKeysUsage(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run(t.Context(), "hotkeys", "-n", "-1"); code != exitUsage {
		t.Fatalf("exit %d, want usage error: %s", code, te.stderr.String())
	}
}
