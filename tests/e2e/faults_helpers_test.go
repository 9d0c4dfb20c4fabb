package e2e

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ringkv/ringkv/internal/testproc"
)

// mountTmpfs mounts a tmpfs of size bytes under a temporary directory and
// unmounts it at cleanup. Mounting needs root: as root a failure fails the
// test (a full disk must be tested where it can be); otherwise the test is
// skipped with the reason, and counts as nothing.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small-disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Skipf("a full disk is tested on a tmpfs of %d MiB, which only root can mount; run as root", size>>20)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mounting a %d MiB tmpfs at %s as root: %v (the container needs CAP_SYS_ADMIN)", size>>20, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// freeBytes is what statfs says an unprivileged process may still write.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fill appends size bytes to a file, the way another process on the same
// disk would take its space.
func fill(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for size > 0 {
		n := min(size, int64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("filling %s: %v", path, err)
		}
		size -= n
	}
}

// nodeReadyz returns the node's /readyz status code and body.
func nodeReadyz(n *node) (int, string, error) {
	resp, err := httpc.Get("http://" + n.HTTP + "/readyz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// metricValue reads one unlabelled series from the node's /metrics.
func metricValue(n *node, name string) (float64, error) {
	v, found, err := testproc.Metric(httpc, n.URL("/metrics"), name)
	if err == nil && !found {
		err = fmt.Errorf("%s: no series %s", n.ID, name)
	}
	return v, err
}

// engines lists the storage engines `ringkv server` offers, read from the
// --engine line of its help: memory and pebble where it names them, else the
// one engine a build without the flag has (""). A test run once per engine
// covers whatever this build holds.
func engines(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command(binary, "server", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("ringkv server --help: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, "--engine") {
			continue
		}
		var es []string
		for _, e := range []string{"memory", "pebble"} {
			if strings.Contains(line, e) {
				es = append(es, e)
			}
		}
		if len(es) == 0 {
			t.Fatalf("cannot tell the engines from %q", line)
		}
		return es
	}
	return []string{""}
}

// engineArgs are the server flags that pick engine e ("" for the default).
func engineArgs(e string) []string {
	if e == "" {
		return nil
	}
	return []string{"--engine", e}
}
