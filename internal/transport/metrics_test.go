package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ringkv/ringkv/internal/testutil"
)

func TestTCPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := startTCP(t, "server", func(_ context.Context, _ string, method uint8, p []byte) ([]byte, error) {
		if method == 1 {
			return nil, errors.New("no")
		}
		return p, nil
	}, func(c *TCPConfig) { c.Registerer = reg })
	cli := startTCP(t, "client", echo, func(c *TCPConfig) { c.Registerer = prometheus.NewRegistry(); c.ConnsPerPeer = 1 })

	for _, method := range []uint8{0, 0, 1} {
		_, _ = cli.Call(callCtx(t, 5*time.Second), srv.Addr(), method, []byte("x"))
	}
	_, _ = cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 0, make([]byte, 128<<20))
	c := cli.metrics
	for name, tc := range map[string]struct {
		got  prometheus.Metric
		want float64
	}{
		"ok":          {c.callsOK, 2},
		"remote":      {c.callsRemote, 1},
		"not sent":    {c.callsNotSent, 1},
		"dials":       {c.dialsOK, 1},
		"client conn": {c.conns, 1},
	} {
		if got := metricValue(t, tc.got); got != tc.want {
			t.Errorf("%s = %v, want %v", name, got, tc.want)
		}
	}

	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = nc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	defer nc.Close()
	testutil.EventuallyEvery(t, 5*time.Second, time.Millisecond, func() error {
		if got := metricValue(t, srv.metrics.refused); got != 1 {
			return errors.New("refused connection not counted")
		}
		return nil
	})
	// The server counts a batch after its write returns, and the client
	// can have read the response by then: wait for the count.
	testutil.EventuallyEvery(t, 5*time.Second, time.Millisecond, func() error {
		if b, f := metricValue(t, srv.metrics.batches), metricValue(t, srv.metrics.frames); b == 0 || f != 3 {
			return fmt.Errorf("server wrote %v frames in %v batches, want 3 frames", f, b)
		}
		return nil
	})
	if fams, err := reg.Gather(); err != nil || len(fams) == 0 {
		t.Errorf("registry gathered %d families, %v", len(fams), err)
	}

	if _, err := Listen(TCPConfig{Addr: "127.0.0.1:0", Handler: echo, Registerer: reg}); err == nil {
		t.Errorf("Listen registered the same metrics twice on one registry")
	}
}

func metricValue(tb testing.TB, m prometheus.Metric) float64 {
	tb.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		tb.Fatal(err)
	}
	if pb.Counter != nil {
		return pb.Counter.GetValue()
	}
	return pb.Gauge.GetValue()
}
