package transport

import (
	"context"
	"fmt"
	"net"
	"testing"
)

// BenchmarkTCPCallParallel measures small calls over loopback from many
// goroutines at once, as a coordinator fanning out writes does. Besides
// calls/s it reports write syscalls per call on each side: well below 1 means
// frames are being coalesced.
func BenchmarkTCPCallParallel(b *testing.B) {
	for _, size := range []int{64, 1024} {
		for _, conns := range []int{1, 2} {
			b.Run(fmt.Sprintf("payload=%d/conns=%d", size, conns), func(b *testing.B) {
				benchCalls(b, size, conns, 32)
			})
		}
	}
}

// BenchmarkTCPCallSerial is one caller at a time: the round-trip latency the
// writer's yield must not hurt.
func BenchmarkTCPCallSerial(b *testing.B) {
	benchCalls(b, 64, 1, 0)
}

// benchCalls runs parallelism callers per CPU, or a single caller for 0.
func benchCalls(b *testing.B, size, conns, parallelism int) {
	b.Helper()
	var srvWrites, cliWrites countWrites
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := startTCP(b, "server", func(_ context.Context, _ string, _ uint8, p []byte) ([]byte, error) {
		return p[:min(len(p), 16)], nil // an ack-sized answer, like a replica write
	}, func(c *TCPConfig) {
		c.Listener = countingListener{Listener: ln, writes: &srvWrites}
		c.Logger = nil
	})
	cli := startTCP(b, "client", echo, func(c *TCPConfig) {
		c.ConnsPerPeer = conns
		c.Logger = nil
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return countingConn{Conn: nc, writes: &cliWrites}, nil
		}
	})
	payload := make([]byte, size)
	ctx := context.Background()
	if _, err := cli.Call(ctx, srv.Addr(), 1, payload); err != nil { // dial outside the timing
		b.Fatal(err)
	}
	srv0, cli0 := srvWrites.Load(), cliWrites.Load()
	b.SetBytes(int64(size))
	b.ResetTimer()
	if parallelism == 0 {
		for range b.N {
			if _, err := cli.Call(ctx, srv.Addr(), 1, payload); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(parallelism) // 32 callers per CPU: a busy coordinator
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := cli.Call(ctx, srv.Addr(), 1, payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(float64(cliWrites.Load()-cli0)/float64(b.N), "cli-writes/call")
	b.ReportMetric(float64(srvWrites.Load()-srv0)/float64(b.N), "srv-writes/call")
}
