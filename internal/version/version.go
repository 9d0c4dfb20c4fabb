// Package version holds what a build stamps into the binary: its version, the
// commit it was built from and when. One place, so that `ringkv version`, INFO,
// /v1/cluster and the ringkv_build_info metric can never disagree.
//
// The Makefile sets them with -ldflags -X (see its LDFLAGS); a plain `go build`
// or `go install` leaves the variables empty, and the values then come from
// the build information the Go toolchain embeds (the module version for
// `go install ...@v1.2.3`, the VCS revision and time for a build in a
// checkout).
package version

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Set at link time:
//
//	-X github.com/ringkv/ringkv/internal/version.version=v1.2.3
//	-X github.com/ringkv/ringkv/internal/version.commit=<sha>
//	-X github.com/ringkv/ringkv/internal/version.date=<RFC 3339>
var version, commit, date string

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
}

// unknown stands for a field neither the linker nor the toolchain filled in.
const unknown = "unknown"

var (
	once sync.Once
	info Info
)

// Get returns this binary's build identity; it never has an empty field.
func Get() Info {
	once.Do(func() { info = resolve(version, commit, date, debug.ReadBuildInfo) })
	return info
}

// resolve fills the stamped values, falling back to the embedded build
// information, then to "dev"/"unknown".
func resolve(v, c, d string, read func() (*debug.BuildInfo, bool)) Info {
	i := Info{Version: v, Commit: c, Date: d, GoVersion: runtime.Version()}
	if bi, ok := read(); ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.time":
				if i.Date == "" {
					i.Date = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && c == "" && i.Commit != "" {
			// Built from a checkout with uncommitted changes: the revision
			// alone would claim more than is true.
			i.Commit += "-dirty"
		}
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	if i.Commit == "" {
		i.Commit = unknown
	}
	if i.Date == "" {
		i.Date = unknown
	}
	return i
}

// String is the one-line form `ringkv version` prints.
func (i Info) String() string {
	return "ringkv " + i.Version + " (commit " + i.Commit + ", built " + i.Date + ", " + i.GoVersion + ")"
}
