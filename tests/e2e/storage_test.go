package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Past --max-memory a node refuses SETs with Redis' own OOM reply, word for
// word, while DEL and GET keep working and INFO memory says why.
func TestMaxMemoryOOMReply(t *testing.T) {
	n := newNode(t, "oom", "--max-memory", "4mb")
	n.Start()
	c := n.redis()
	ctx := t.Context()
	value := strings.Repeat("v", 1000)
	var err error
	i := 0
	for ; i < 100_000 && err == nil; i++ {
		err = c.Set(ctx, fmt.Sprintf("k%d", i), value, 0).Err()
	}
	const want = "OOM command not allowed when used memory > 'maxmemory'."
	if err == nil || err.Error() != want {
		t.Fatalf("SET past --max-memory after %d writes: %v, want %q", i, err, want)
	}
	if err := c.Del(ctx, "k0").Err(); err != nil {
		t.Fatalf("DEL past --max-memory: %v", err)
	}
	if v, err := c.Get(ctx, "k1").Result(); err != nil || v != value {
		t.Fatalf("GET past --max-memory: %q %v", v, err)
	}
	info, err := c.Info(ctx, "memory").Result()
	if err != nil || !strings.Contains(info, "maxmemory:4194304") || !strings.Contains(info, "used_memory:") {
		t.Fatalf("INFO memory: %v\n%s", err, info)
	}
}

// A second process on a data directory in use fails naming the lock file
// and the process that holds it (issue 29 case 6), on both engines.
func TestDataDirLockNamesHolder(t *testing.T) {
	for _, engine := range []string{"memory", "pebble"} {
		t.Run(engine, func(t *testing.T) {
			a := newNode(t, "lock-a", "--engine", engine)
			a.Start()
			b := newNode(t, "lock-b", "--engine", engine)
			b.DataDir = a.DataDir
			b.StartNoWait()
			select {
			case <-b.Exited():
			case <-time.After(30 * time.Second):
				t.Fatal("a second process on the same data directory kept running")
			}
			tail := b.LogTail()
			for _, want := range []string{"ringkv.lock", fmt.Sprintf("pid %d", a.Pid())} {
				if !strings.Contains(tail, want) {
					t.Fatalf("the second process's error does not say %q:\n%s", want, tail)
				}
			}
		})
	}
}
