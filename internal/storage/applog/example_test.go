package applog_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/internal/storage/applog"
)

// Example shows the engine's use: replay into memory on Open, Append after
// applying to memory, and compaction as Rotate then WriteSnapshot of the
// live records.
func Example() {
	fs := vfs.NewMem()
	live := map[string]string{}
	// The engine keeps the newer version of each key (LWW), which makes
	// replay order irrelevant; this toy keeps the last one seen.
	apply := func(e []byte) error { live[string(e[:1])] = string(e); return nil }

	l, err := applog.Open(applog.Options{FS: fs, Dir: "/data/log", Sync: true}, apply)
	if err != nil {
		var ce *applog.CorruptError
		if errors.As(err, &ce) {
			log.Fatalf("refusing to start: %s at offset %d is damaged", ce.Path, ce.Offset)
		}
		log.Fatal(err)
	}
	for _, e := range []string{"a1", "b1", "a2"} {
		_ = apply([]byte(e)) // memory first: a snapshot must see what is logged
		if err := l.Append([]byte(e)); err != nil {
			log.Fatal(err) // not acknowledged: the client gets an error
		}
	}

	upTo, err := l.Rotate()
	if err != nil {
		log.Fatal(err)
	}
	err = l.WriteSnapshot(upTo, 32<<20, func(w applog.SnapshotWriter) error {
		for _, e := range live {
			if err := w.Add([]byte(e)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	live = map[string]string{}
	l, err = applog.Open(applog.Options{FS: fs, Dir: "/data/log"}, apply)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	fmt.Println(live["a"], live["b"], l.Stats().Snapshots)
	// Output: a2 b1 0
}
