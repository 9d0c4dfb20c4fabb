package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testutil"
)

// The README's first command: `ringkv demo` starts a 3-node cluster in one
// process, a key written through one node reads back through another, and
// Ctrl-C stops it cleanly.
func TestDemoCluster(t *testing.T) {
	// Node i listens on base+10i (+1 peer, +2 gossip) and base+1000+10i.
	base := freeBase(t, func(p int) []int {
		var ports []int
		for i := range 3 {
			ports = append(ports, p+10*i, p+10*i+1, p+10*i+2, p+1000+10*i)
		}
		return ports
	})
	cmd := exec.Command(binary, "demo", "--in-memory", "--base-port", strconv.Itoa(base))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Ctrl-C") {
				banner <- b.String()
				io.Copy(io.Discard, out)
				return
			}
		}
		banner <- b.String()
	}()
	var text string
	select {
	case text = <-banner:
	case <-time.After(60 * time.Second):
		t.Fatalf("no banner; stderr:\n%s", stderr.String())
	}
	for _, want := range []string{"3 node(s) running", "redis-cli", "node3"} {
		if !strings.Contains(text, want) {
			t.Fatalf("banner lacks %q:\n%s", want, text)
		}
	}
	n1 := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", base)})
	n3 := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", base+20)})
	defer n1.Close()
	defer n3.Close()
	ctx := t.Context()
	testutil.Eventually(t, 30*time.Second, func() error { return n1.Set(ctx, "demo", "works", 0).Err() })
	if v, err := n3.Get(ctx, "demo").Result(); err != nil || v != "works" {
		t.Fatalf("GET through node 3: %q %v", v, err)
	}
	// Its nodes speak mutual TLS between themselves: a peer handshake in the
	// clear gets no peer answer, only a closed connection.
	peer, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", base+1), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peer.Write([]byte("RKVT\x01\x00\x10\x00\x00\x08intruder"))
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(peer) // EOF or a reset: both end it
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() || strings.Contains(string(got), "RKVT") {
		t.Fatalf("the demo's peer port answered a plain handshake with %q (%v), want a closed connection", got, err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop on Ctrl-C")
	}
}
