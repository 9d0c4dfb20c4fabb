package testproc

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/testutil"
)

// RedisServer starts a redis-server on loopback for the test and returns its
// address; with cluster, in cluster mode, its bus on a second port. It is
// killed when the test ends.
//
// Redis cannot be asked for a port the kernel picks: --port 0 means no TCP
// listener at all, and it has nothing like --addr-file to tell one. Its
// ports are picked here instead, below the kernel's ephemeral range, where
// no outgoing connection of another process is given one, among those free
// at the pick; if another process binds one first, redis-server fails, and
// it is started again on new ones. That it answers is checked against its
// own pid, so that a server of someone else on the port never passes.
func RedisServer(tb testing.TB, cluster bool) string {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatalf("redis-server not installed (apt-get install redis-server; .ci/run does): %v", err)
	}
	for range 5 {
		if addr, ok := startRedis(tb, cluster); ok {
			return addr
		}
	}
	tb.Fatal("redis-server found a port taken five times in a row")
	return ""
}

// startRedis starts redis-server on picked ports; ok is false when it
// could not bind them, which is worth a try on others.
func startRedis(tb testing.TB, cluster bool) (addr string, ok bool) {
	tb.Helper()
	dir := tb.TempDir()
	logPath := filepath.Join(dir, "redis.log")
	port := pickPort(tb)
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", logPath}
	if cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(pickPort(tb)),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"))
	}
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() { cmd.Process.Kill(); <-exited })
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	inUse := false
	testutil.Eventually(tb, 10*time.Second, func() error {
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			if inUse = strings.Contains(string(log), "Address already in use"); inUse {
				return nil
			}
			tb.Fatalf("redis-server on %s exited: %s", addr, log)
		default:
		}
		pid, err := redisPid(addr)
		if err != nil {
			return err
		}
		if pid != cmd.Process.Pid {
			return fmt.Errorf("%s is redis-server pid %d, not ours (%d)", addr, pid, cmd.Process.Pid)
		}
		return nil
	})
	return addr, !inUse
}

// redisPid asks the redis-server at addr for its process id (INFO server).
func redisPid(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "process_id:"); ok {
			return strconv.Atoi(v)
		}
		if strings.HasPrefix(sc.Text(), "-") {
			return 0, fmt.Errorf("INFO server: %s", sc.Text())
		}
	}
	return 0, fmt.Errorf("INFO server of %s names no process_id: %v", addr, sc.Err())
}

// pickPort returns a loopback port below the ephemeral range that is free
// now, for a server that cannot bind port 0.
func pickPort(tb testing.TB) int {
	tb.Helper()
	hi := ephemeralLow()
	lo := max(1024, hi-12000)
	for range 1000 {
		p := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	tb.Fatalf("no free loopback port in %d..%d", lo, hi-1)
	return 0
}

// ephemeralLow is the first port of the range the kernel hands out for
// outgoing connections and port 0 (Linux's default, where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if p, err := strconv.Atoi(f[0]); err == nil && p > 2048 {
				return p
			}
		}
	}
	return 32768
}
