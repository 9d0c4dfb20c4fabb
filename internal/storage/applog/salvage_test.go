package applog

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestSalvageSetsAsideAndKeepsTheRest(t *testing.T) {
	cases := map[string]struct {
		file func(fs vfs.FS) string
		at   func(n int) int // first damaged byte, for a file of n bytes
	}{
		"middle of a segment":    {func(fs vfs.FS) string { s := logFiles(t, fs, "/log", kindSegment); return s[len(s)/2] }, func(n int) int { return n / 3 }},
		"whole last segment":     {func(fs vfs.FS) string { s := logFiles(t, fs, "/log", kindSegment); return s[len(s)-1] }, func(int) int { return 0 }},
		"middle of the snapshot": {func(fs vfs.FS) string { return logFiles(t, fs, "/log", kindSnapshot)[0] }, func(n int) int { return n / 2 }},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			want := buildLog(t, fs, 300, true)
			path := c.file(fs)
			b := readFile(t, fs, path)
			orig := bytes.Clone(b)
			at := c.at(len(b))
			copy(b[at:], randomBytes(rand.New(rand.NewPCG(3, 4)), min(64, len(b)-at)))
			if at == 0 {
				b = randomBytes(rand.New(rand.NewPCG(5, 6)), len(b))
			}
			writeFile(t, fs, path, b)

			tl := newTestLogger(t)
			l, r := mustOpen(t, Options{FS: fs, Dir: "/log", Salvage: true, Logger: tl.Logger})
			rep := l.Salvaged()
			if len(rep) != 1 || rep[0].Path != path || rep[0].Offset > int64(at) || !strings.Contains(rep[0].MovedTo, path+".corrupt-") {
				t.Fatalf("Salvaged() = %+v, want %s set aside at or before %d", rep, path, at)
			}
			if st := l.Stats(); st.Salvaged != 1 {
				t.Fatalf("Stats.Salvaged = %d", st.Salvaged)
			}
			if got := readFile(t, fs, rep[0].MovedTo); !bytes.Equal(got, b) {
				t.Fatal("the set-aside file is not the damaged file, byte for byte")
			}
			if _, err := fs.Stat(path); err == nil {
				t.Fatal("the damaged file is still in the log")
			}
			if w := strings.Join(tl.Warnings(), "\n"); !strings.Contains(w, path) || !strings.Contains(w, "moved_to="+rep[0].MovedTo) {
				t.Fatalf("warnings %q do not name the file and where it went", w)
			}
			kept := r.set()
			lost := 0
			for e := range want {
				if kept[e] > 0 {
					continue
				}
				lost++
				if !bytes.Contains(orig, []byte(e)) {
					t.Fatalf("entry %.20q lost, but it was not in the damaged file", e)
				}
			}
			for e := range kept {
				if want[e] == 0 {
					t.Fatalf("replayed %.20q, never appended", e)
				}
			}
			if lost == 0 {
				t.Fatal("no entry lost: the damage was not where the test put it")
			}
			if rep[0].Offset > headerSize && rep[0].Entries == 0 {
				t.Fatalf("report says no entry was kept before offset %d", rep[0].Offset)
			}
			l.Close()

			// The kept entries are durable: a plain open (no salvage)
			// replays the same, and the set-aside file is no gap.
			l, r = mustOpen(t, Options{FS: fs, Dir: "/log", Logger: tl.Logger})
			defer l.Close()
			got := r.set()
			for e := range kept {
				if got[e] == 0 {
					t.Fatalf("salvaged entry %.20q gone after a restart", e)
				}
			}
		})
	}
}
