package applog

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func readFile(t testing.TB, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile writes a copy of b: vfs.File.Write may scribble on its argument
// (Pebble's invariants builds, on under -race, do).
func writeFile(t testing.TB, fs vfs.FS, path string, b []byte) {
	t.Helper()
	b = bytes.Clone(b)
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// dirBytes maps every file of dir (but the LOCK) to its contents.
func dirBytes(t testing.TB, fs vfs.FS, dir string) map[string]string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, n := range names {
		if n != lockName {
			m[n] = string(readFile(t, fs, fs.PathJoin(dir, n)))
		}
	}
	return m
}

func logFiles(t testing.TB, fs vfs.FS, dir string, kind int) []string {
	t.Helper()
	names, _ := fs.List(dir)
	var out []string
	for _, n := range names {
		if k, _, ok := parseName(n); ok && k == kind {
			out = append(out, fs.PathJoin(dir, n))
		}
	}
	slices.Sort(out)
	return out
}

// buildLog writes n entries over several small segments and, with snap, a
// snapshot of the first half; it returns the entries appended.
func buildLog(t testing.TB, fs vfs.FS, n int, snap bool) map[string]int {
	t.Helper()
	l, _ := mustOpen(t, Options{FS: fs, Dir: "/log", SegmentSize: 2048, Sync: true, Logger: newTestLogger(t).Logger})
	want := map[string]int{}
	var live [][]byte
	for i := range n {
		e := entry(i)
		live = append(live, e)
		if err := l.Append(e); err != nil {
			t.Fatal(err)
		}
		want[string(e)]++
		if snap && i == n/2 {
			upTo, err := l.Rotate()
			if err != nil {
				t.Fatal(err)
			}
			err = l.WriteSnapshot(upTo, 0, func(w SnapshotWriter) error {
				for _, e := range live {
					if err := w.Add(e); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

func TestTornTailTruncated(t *testing.T) {
	tails := map[string]func(last []byte) []byte{
		"partial frame header": func(b []byte) []byte { return append(b, 7, 0, 0) },
		"short payload":        func(b []byte) []byte { return append(b, appendFrame(nil, []byte("abcdefgh"))[:12]...) },
		"bad checksum":         func(b []byte) []byte { f := appendFrame(nil, []byte("abcdefgh")); f[10] ^= 1; return append(b, f...) },
		"zeros of a crash":     func(b []byte) []byte { return append(b, make([]byte, 5000)...) },
		"hole then frames": func(b []byte) []byte {
			// A power loss kept a later block but not the one before it.
			b = append(b, make([]byte, 4096-len(b)%4096+600)...)
			return append(b, appendFrame(nil, []byte("unsynced"))...)
		},
	}
	for name, tear := range tails {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			want := buildLog(t, fs, 100, false)
			segs := logFiles(t, fs, "/log", kindSegment)
			last := segs[len(segs)-1]
			good := readFile(t, fs, last)
			torn := tear(slices.Clone(good))
			writeFile(t, fs, last, torn)

			tl := newTestLogger(t)
			l, r := mustOpen(t, Options{FS: fs, Dir: "/log", Logger: tl.Logger})
			checkSame(t, r.set(), want)
			if st := l.Stats(); st.TornTails != 1 {
				t.Fatalf("TornTails = %d, want 1", st.TornTails)
			}
			warns := strings.Join(tl.Warnings(), "\n")
			for _, s := range []string{"torn tail", last, "offset=" + itoa(len(good)), "bytes_dropped=" + itoa(len(torn)-len(good))} {
				if !strings.Contains(warns, s) {
					t.Fatalf("warning %q does not say %q", warns, s)
				}
			}
			if err := l.Append([]byte("after")); err != nil {
				t.Fatal(err)
			}
			want["after"]++
			l.Close()
			if got := readFile(t, fs, last); !bytes.Equal(got, torn) {
				t.Fatal("the torn segment's bytes changed")
			}
			// The next open reads the segment only up to the length its
			// successor recorded: no second warning, no corruption.
			tl = newTestLogger(t)
			l, r = mustOpen(t, Options{FS: fs, Dir: "/log", Logger: tl.Logger})
			defer l.Close()
			checkSame(t, r.set(), want)
			if w := tl.Warnings(); len(w) != 0 {
				t.Fatalf("second open warned: %q", w)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

func TestCorruptionRefused(t *testing.T) {
	type damage struct {
		file    func(fs vfs.FS) string
		corrupt func(b []byte, rng *rand.Rand) (out []byte, at int) // at: first damaged byte
	}
	firstSeg := func(fs vfs.FS) string { return logFiles(t, fs, "/log", kindSegment)[0] }
	lastFull := func(fs vfs.FS) string { s := logFiles(t, fs, "/log", kindSegment); return s[len(s)-1] }
	midSeg := func(fs vfs.FS) string { s := logFiles(t, fs, "/log", kindSegment); return s[len(s)/2] }
	theSnap := func(fs vfs.FS) string { return logFiles(t, fs, "/log", kindSnapshot)[0] }
	whole := func(b []byte, rng *rand.Rand) ([]byte, int) { return randomBytes(rng, len(b)), 0 }
	middle := func(b []byte, rng *rand.Rand) ([]byte, int) {
		at := len(b) / 3
		copy(b[at:], randomBytes(rng, 64))
		return b, at
	}
	lastFrame := func(b []byte, rng *rand.Rand) ([]byte, int) { b[len(b)-3] ^= 0x55; return b, len(b) - 3 }
	cases := map[string]damage{
		"whole first segment":         {firstSeg, whole},
		"whole last segment":          {lastFull, whole},
		"middle of a segment":         {midSeg, middle},
		"middle of the last segment":  {lastFull, middle},
		"tail of a non-last segment":  {midSeg, lastFrame},
		"whole snapshot":              {theSnap, whole},
		"middle of the snapshot":      {theSnap, middle},
		"snapshot footer":             {theSnap, lastFrame},
		"header bit flip":             {midSeg, func(b []byte, _ *rand.Rand) ([]byte, int) { b[9] ^= 1; return b, 0 }},
		"snapshot cut at a frame end": {theSnap, func(b []byte, _ *rand.Rand) ([]byte, int) { return b[:len(b)-footerSize], len(b) - footerSize }},
	}
	for name, d := range cases {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(name))))
			fs := vfs.NewMem()
			buildLog(t, fs, 300, true)
			path := d.file(fs)
			out, at := d.corrupt(readFile(t, fs, path), rng)
			writeFile(t, fs, path, out)
			before := dirBytes(t, fs, "/log")

			_, err := Open(Options{FS: fs, Dir: "/log", Logger: newTestLogger(t).Logger}, func([]byte) error { return nil })
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Open = %v, want *CorruptError", err)
			}
			if ce.Path != path {
				t.Fatalf("CorruptError names %s, damaged file is %s", ce.Path, path)
			}
			if ce.Offset > int64(at) || ce.Offset < int64(at)-300 {
				t.Fatalf("CorruptError offset %d, damage at %d", ce.Offset, at)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "offset "+itoa(int(ce.Offset))) {
				t.Fatalf("error %q does not name file and offset", msg)
			}
			if after := dirBytes(t, fs, "/log"); !mapsEqual(before, after) {
				t.Fatal("a refused open changed the directory")
			}
		})
	}
}

func TestMissingSegmentRefused(t *testing.T) {
	fs := vfs.NewMem()
	buildLog(t, fs, 300, false)
	segs := logFiles(t, fs, "/log", kindSegment)
	if err := fs.Remove(segs[2]); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Options{FS: fs, Dir: "/log"}, func([]byte) error { return nil })
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Path != segs[2] || !errors.Is(err, errGap) {
		t.Fatalf("Open = %v, want a CorruptError naming the missing %s", err, segs[2])
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
