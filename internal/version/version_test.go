package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	checkout := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"},
		}}, true
	}
	installed := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, true
	}
	for _, tc := range []struct {
		name         string
		v, c, d      string
		read         func() (*debug.BuildInfo, bool)
		wantV, wantC string
		wantD        string
	}{
		{"stamped wins", "v1.2.3", "deadbeef", "2026-12-07T00:00:00Z", checkout, "v1.2.3", "deadbeef", "2026-12-07T00:00:00Z"},
		{"nothing known", "", "", "", none, "dev", "unknown", "unknown"},
		{"checkout build", "", "", "", checkout, "dev", "abc123-dirty", "2026-01-02T03:04:05Z"},
		{"go install @version", "", "", "", installed, "v1.4.0", "unknown", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := resolve(tc.v, tc.c, tc.d, tc.read)
			if got.Version != tc.wantV || got.Commit != tc.wantC || got.Date != tc.wantD {
				t.Fatalf("resolve = %+v, want version %q commit %q date %q", got, tc.wantV, tc.wantC, tc.wantD)
			}
			if got.GoVersion == "" {
				t.Fatal("no Go version")
			}
		})
	}
}
