package applog

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FuzzReplay opens a log whose last segment (after a valid one) holds
// arbitrary bytes: Open must never panic, and either replays or says
// *CorruptError; a successful open must replay the valid segment whole.
func FuzzReplay(f *testing.F) {
	seg := header{kind: kindSegment, num: 2, prevLen: 0}.encode(nil)
	f.Add(seg)
	f.Add(appendFrame(appendFrame(seg, []byte("a")), []byte("bc")))
	f.Add(append(appendFrame(seg, []byte("a")), 1, 0, 0))
	f.Add(append(appendFrame(seg, []byte("a")), make([]byte, 600)...))
	f.Add([]byte("RKVL"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := vfs.NewMem()
		if err := fs.MkdirAll("/log", 0o755); err != nil {
			t.Fatal(err)
		}
		first := appendFrame(appendFrame(header{kind: kindSegment, num: 1}.encode(nil), []byte("one")), []byte("two"))
		writeFile(t, fs, "/log/"+segName(1), first)
		writeFile(t, fs, "/log/"+segName(2), data)
		var got []string
		l, err := Open(Options{FS: fs, Dir: "/log"}, func(e []byte) error { got = append(got, string(e)); return nil })
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Open = %v, want nil or *CorruptError", err)
			}
			return
		}
		defer l.Close()
		if len(got) < 2 || got[0] != "one" || got[1] != "two" {
			t.Fatalf("replayed %q, want the first segment's entries first", got)
		}
		if err := l.Append([]byte("x")); err != nil {
			t.Fatal(err)
		}
	})
}
