package applog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

const killDirEnv = "RINGKV_APPLOG_KILL_DIR"

// TestKillHelper is TestKill9KeepsWrittenAppends' child: it appends with
// Sync false (--sync periodic, never calling Sync) from several goroutines
// on the real disk and prints "ack <n>" after each Append returns, until it
// is killed. It does nothing in a normal run.
func TestKillHelper(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		return
	}
	l, err := Open(Options{FS: vfs.Default, Dir: dir, SegmentSize: 256 << 10}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				n := w*100_000_000 + i
				if err := l.Append(entry(n)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d\n", n)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestKill9KeepsWrittenAppends: with Sync false, an Append that returned has
// reached the OS, so SIGKILL of the process (not of the machine) loses none.
func TestKill9KeepsWrittenAppends(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break // a line cut by the kill was never acknowledged
		}
		if n, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "ack "); ok {
			var i int
			if _, err := fmt.Sscan(n, &i); err != nil {
				t.Fatalf("child's ack line %q: %v", line, err)
			}
			acked = append(acked, string(entry(i)))
		}
		if len(acked) == 20000 {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	werr := cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(werr, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\nstderr:\n%s", werr, stderr.String())
	}
	l, rep := mustOpen(t, Options{FS: vfs.Default, Dir: dir, Logger: newTestLogger(t).Logger})
	defer l.Close()
	got := rep.set()
	for _, e := range acked {
		if got[e] == 0 {
			t.Fatalf("acknowledged %.20q lost to SIGKILL (%d acknowledged, %d replayed)", e, len(acked), len(got))
		}
	}
	t.Logf("%d acknowledged appends, %d replayed after SIGKILL", len(acked), len(got))
}
