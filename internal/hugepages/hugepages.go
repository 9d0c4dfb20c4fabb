package hugepages

import (
	"os"
	"strings"
)

// Kernel modes, as /sys/kernel/mm/transparent_hugepage/enabled names them.
const (
	ModeAlways  = "always"
	ModeMadvise = "madvise"
	ModeNever   = "never"
	ModeUnknown = "unknown" // not Linux, or the file is unreadable (a container without /sys)
)

const modeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// Result says what Reserve did.
type Result struct {
	// Mode is the kernel's transparent huge page mode.
	Mode string
	// Advised is the number of heap bytes advised; 0 when the mode made
	// advice pointless ("always" gives huge pages anyway, "never" none).
	Advised int64
}

// Mode reads the kernel's transparent huge page mode.
func Mode() string {
	b, err := os.ReadFile(modeFile)
	if err != nil {
		return ModeUnknown
	}
	return parseMode(string(b))
}

// parseMode picks the bracketed choice out of the mode file's list, as in
// "always [madvise] never".
func parseMode(s string) string {
	for _, f := range strings.Fields(s) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			return f[1 : len(f)-1]
		}
	}
	return ModeUnknown
}
