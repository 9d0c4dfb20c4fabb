package testproc

import (
	"errors"
	"net"
	"sync"
	"testing"
)

// StartJoined starts nodes as one cluster: the first, ready, then the rest
// joining its gossip address, and waits until every one is ready. A node's
// readiness is its own: whether each sees the others is the caller's to
// wait for, with the credentials its nodes need.
func StartJoined(nodes []*Node) {
	nodes[0].tb.Helper()
	nodes[0].Start()
	for _, n := range nodes[1:] {
		n.Join = []string{nodes[0].Gossip}
	}
	StartAll(nodes[1:])
}

// StartAll starts nodes in order, each once the one before has bound its
// ports (so that it may name them), then waits until every one is ready.
func StartAll(nodes []*Node) {
	if len(nodes) > 0 {
		nodes[0].tb.Helper()
	}
	for _, n := range nodes {
		n.StartNoWait()
	}
	for _, n := range nodes {
		n.WaitReady()
	}
}

// Unanswered returns a loopback address at which nothing answers: a port
// the kernel picked, held for TCP and UDP until the test ends, where a
// connection is closed as soon as it is accepted and a datagram is never
// read. It is a gossip seed that never answers, and the stand-in for a
// member that has not bound its own address yet (initialClusterFlag).
func Unanswered(tb testing.TB) string {
	tb.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", AnyPort)
		if err != nil {
			tb.Fatal(err)
		}
		// The kernel picked the TCP port; UDP's ports are apart, and the
		// same number may be taken there.
		udp, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			ln.Close()
			continue
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if errors.Is(err, net.ErrClosed) {
					return
				}
				if err == nil {
					c.Close()
				}
			}
		})
		tb.Cleanup(func() {
			ln.Close()
			udp.Close()
			wg.Wait()
		})
		return ln.Addr().String()
	}
	tb.Fatal("no loopback port free for both TCP and UDP in 100 tries")
	return ""
}
