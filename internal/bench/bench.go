// Package bench is the load generator behind `ringkv bench`. It speaks RESP
// itself, so it drives ringkv and redis-server alike, and it is built to stay
// out of the measurement: requests are encoded into one reused buffer per
// connection, sent with one write per pipeline batch, and their replies are
// framed but never decoded into values.
//
// Two modes. A closed loop (Config.Rate zero) keeps Pipeline requests in
// flight on every connection and sends the next batch as soon as the last
// reply arrives: it finds the throughput ceiling, and its latencies are
// service times. An open loop (Rate > 0) sends on a fixed schedule whatever
// the server does and measures each request from its intended start time, so
// latencies include the queueing a real client population would see
// (HdrHistogram, corrected for coordinated omission as wrk2 does), less any
// oversleep of its own timer (see worker.loop).
package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: microseconds from 1 µs to one minute at three significant
// digits (0.1% resolution), about 30 KiB per histogram.
const (
	histMinUS  = 1
	histMaxUS  = int64(time.Minute / time.Microsecond)
	histDigits = 3
)

// maxErrorSamples bounds the distinct error messages a run reports.
const maxErrorSamples = 8

// Run connects Conns connections, runs the workload until the duration or
// request count is reached or ctx ends, and returns what it measured. A
// connection that fails (refused, reset, protocol error) ends the run with an
// error: a load generator that silently loses connections reports numbers for
// a load nobody asked for. Server error replies are counted, not fatal.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	slots, err := discover(ctx, cfg)
	if err != nil {
		return nil, err
	}
	workers, err := dialAll(ctx, cfg, slots)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, w := range workers {
			w.close()
		}
	}()
	if slots != nil {
		log.Debug("connected to a Redis Cluster", "conns", len(workers), "masters", slots.addrs)
	} else {
		log.Debug("connected", "conns", len(workers), "addrs", cfg.Addrs)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	start := time.Now()
	r := &run{
		cfg:          cfg,
		slots:        slots,
		measureStart: start.Add(cfg.Warmup),
		sleep:        cfg.sleep,
	}
	if r.sleep == nil {
		r.sleep = sleep
	}
	if cfg.Duration > 0 {
		r.end = r.measureStart.Add(cfg.Duration)
	}
	r.remaining.Store(cfg.Requests)

	// Closing the connections is what unblocks a worker waiting on a reply
	// when the run is cancelled.
	stopClosing := context.AfterFunc(ctx, func() {
		for _, w := range workers {
			w.close()
		}
	})
	defer stopClosing()

	var wg sync.WaitGroup
	for i, w := range workers {
		if cfg.Rate > 0 {
			w.sched = newSchedule(start, cfg.Rate, len(workers), i)
		}
		wg.Go(func() {
			if err := w.loop(ctx, r); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("bench: connection %d to %s: %w", w.id, w.addr, err))
			}
		})
	}

	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		go r.progress(ctx, workers, start, progressDone)
	} else {
		close(progressDone)
	}
	wg.Wait()
	finished := time.Now()
	cancel(nil)
	<-progressDone

	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return r.result(workers, finished), nil
}

// run is the state the workers share.
type run struct {
	cfg          Config
	slots        *slotMap // the Redis Cluster's topology at the start; nil for plain servers
	measureStart time.Time
	end          time.Time // zero: no duration limit
	// remaining counts the measured requests still to send when Config.Requests is set.
	remaining atomic.Int64
	sleep     func(ctx context.Context, d time.Duration) // Config.sleep or sleep
}

// claim reserves up to want requests to send now and reports how many; zero
// ends the worker.
func (r *run) claim(now time.Time, want int) int {
	if !r.end.IsZero() && !now.Before(r.end) {
		return 0
	}
	if r.cfg.Requests == 0 || now.Before(r.measureStart) {
		return want
	}
	for {
		left := r.remaining.Load()
		if left <= 0 {
			return 0
		}
		n := min(int64(want), left)
		if r.remaining.CompareAndSwap(left, left-n) {
			return int(n)
		}
	}
}

// worker drives one connection, or against a Redis Cluster one connection
// per master (cl). Its histograms are its own, merged after the run; only the
// live counters are read by another goroutine.
type worker struct {
	id    int
	addr  string
	nc    net.Conn // nil with cl
	rr    *replyReader
	cl    *clusterConns
	wl    *workload
	sched schedule // open loop only

	buf      []byte
	ops      []Op
	intended []time.Time // open loop: each in-flight request's intended start

	hist      [numOps]*hdrhistogram.Histogram
	count     [numOps]int64
	errs      [numOps]int64
	errSample map[string]int64

	// Live counters for the progress line, measured or not.
	liveOps   atomic.Int64
	liveErrs  atomic.Int64
	liveLatUS atomic.Int64
}

// dialAll connects the workers: each to one address, round-robin, or, with
// a Redis Cluster's slot map, each to every master.
func dialAll(ctx context.Context, cfg Config, slots *slotMap) ([]*worker, error) {
	workers := make([]*worker, 0, cfg.Conns)
	fail := func(err error) ([]*worker, error) {
		for _, w := range workers {
			w.close()
		}
		return nil, err
	}
	var d net.Dialer
	for i := range cfg.Conns {
		w := &worker{
			id:        i,
			wl:        newWorkload(cfg, uint64(i)),
			errSample: map[string]int64{},
		}
		for op := range w.hist {
			w.hist[op] = hdrhistogram.New(histMinUS, histMaxUS, histDigits)
		}
		if slots != nil {
			w.addr = "the Redis Cluster of " + cfg.Addrs[0]
			w.cl = newClusterConns(slots, cfg)
			workers = append(workers, w)
			if err := w.cl.dialMasters(ctx); err != nil {
				return fail(fmt.Errorf("bench: %w", err))
			}
			continue
		}
		w.addr = cfg.Addrs[i%len(cfg.Addrs)]
		dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
		nc, err := dial(dctx, &d, w.addr, cfg.TLS)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("bench: connect %s: %w", w.addr, err))
		}
		w.nc, w.rr = nc, newReplyReader(nc)
		workers = append(workers, w)
		if err := handshake(nc, w.rr, cfg.User, cfg.Password, cfg.Consistency, cfg.DialTimeout); err != nil {
			return fail(fmt.Errorf("bench: connect %s: %w", w.addr, err))
		}
	}
	return workers, nil
}

// dial connects to addr, over TLS when tc is set; the server's name is
// checked against addr's host.
func dial(ctx context.Context, d *net.Dialer, addr string, tc *tls.Config) (net.Conn, error) {
	if tc == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	td := tls.Dialer{NetDialer: d, Config: tc}
	return td.DialContext(ctx, "tcp", addr)
}

// close closes the worker's connections; a worker blocked on a reply
// returns with an error.
func (w *worker) close() {
	if w.cl != nil {
		w.cl.close()
		return
	}
	w.nc.Close()
}

// handshake sets the connection's consistency level, if one was asked for.
func handshake(nc net.Conn, rr *replyReader, user, password, consistency string, timeout time.Duration) error {
	if consistency == "" && password == "" {
		return nil
	}
	if err := nc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if err := login(nc, rr, user, password); err != nil {
		return err
	}
	if consistency != "" {
		if _, err := nc.Write(appendCommand(nil, "RINGKV.CONSISTENCY", consistency)); err != nil {
			return err
		}
		msg, err := rr.next()
		if err != nil {
			return err
		}
		if msg != "" {
			hint := ""
			if strings.Contains(msg, "unknown command") {
				hint = ` (not ringkv? a Redis server takes no consistency level: --consistency "")`
			}
			return fmt.Errorf("RINGKV.CONSISTENCY %s: %s%s", consistency, msg, hint)
		}
	}
	return nc.SetDeadline(time.Time{})
}

// login sends AUTH [user] password when a password is set; the caller has
// set the connection's deadline.
func login(nc net.Conn, rr *replyReader, user, password string) error {
	if password == "" {
		return nil
	}
	args := []string{"AUTH", password}
	if user != "" {
		args = []string{"AUTH", user, password}
	}
	if _, err := nc.Write(appendCommand(nil, args...)); err != nil {
		return err
	}
	msg, err := rr.next()
	if err != nil {
		return err
	}
	if msg != "" {
		return fmt.Errorf("AUTH: %s", msg)
	}
	return nil
}

func (w *worker) loop(ctx context.Context, r *run) error {
	depth := r.cfg.Pipeline
	w.buf = make([]byte, 0, depth*(64+r.cfg.ValueSize))
	w.ops = make([]Op, 0, depth)
	w.intended = make([]time.Time, 0, depth)
	var sent int64 // open loop: requests sent so far, the schedule's index
	// woke is when the worker last woke from waiting for its schedule, with
	// nothing in flight. A request that came due before then was late
	// because our timer overslept, not because the server was busy: Go wakes
	// an idle process from a timer with millisecond granularity (its
	// epoll_wait timeout is in ms), 0.66 ms late at the median on a 2-core
	// box. Counted as latency, that put 0.65 ms on the p50 of redis-server
	// itself at 1000 req/s. Such requests are measured from woke; every
	// other request still counts from its intended start.
	var woke time.Time
	for ctx.Err() == nil {
		now := time.Now()
		want := depth
		if r.cfg.Rate > 0 {
			due := w.sched.due(now)
			if due <= sent {
				wait := w.sched.at(sent).Sub(now)
				if !r.end.IsZero() && now.Add(wait).After(r.end) {
					return nil // the next request is due after the run ends
				}
				r.sleep(ctx, wait)
				woke = time.Now()
				continue
			}
			want = int(min(due-sent, int64(depth)))
		}
		n := r.claim(now, want)
		if n == 0 {
			return nil
		}
		w.buf, w.ops, w.intended = w.buf[:0], w.ops[:0], w.intended[:0]
		if w.cl != nil {
			w.cl.spans = w.cl.spans[:0]
		}
		for i := range n {
			var op Op
			start := len(w.buf)
			var keyAt int
			w.buf, op, keyAt = w.wl.appendRequest(w.buf)
			w.ops = append(w.ops, op)
			if r.cfg.Rate > 0 {
				w.intended = append(w.intended, w.sched.at(sent+int64(i)))
			}
			if w.cl != nil {
				slot := keySlot(w.buf[keyAt : keyAt+w.wl.keyLen()])
				w.cl.spans = append(w.cl.spans, span{start: start, end: len(w.buf), slot: slot})
			}
		}
		sent += int64(n)
		if w.cl != nil {
			if err := w.cl.exchange(ctx, w, r, now, woke); err != nil {
				return err
			}
			continue
		}
		if _, err := w.nc.Write(w.buf); err != nil {
			return err
		}
		for i, op := range w.ops {
			msg, err := w.rr.next()
			if err != nil {
				return err
			}
			done := time.Now()
			from := now // closed loop: the batch's send time
			if r.cfg.Rate > 0 {
				from = sendFrom(w.intended[i], woke)
			}
			w.record(r, op, from, done, msg)
		}
	}
	return nil
}

// record counts one reply. Requests intended to start before the measurement
// began are warmup and count only in the live line.
func (w *worker) record(r *run, op Op, from, done time.Time, serverErr string) {
	us := max(done.Sub(from).Microseconds(), histMinUS)
	w.liveOps.Add(1)
	w.liveLatUS.Add(us)
	if serverErr != "" {
		w.liveErrs.Add(1)
	}
	if from.Before(r.measureStart) {
		return
	}
	w.count[op]++
	// Beyond the histogram's range only the max is clipped; the count stays.
	_ = w.hist[op].RecordValue(min(us, histMaxUS))
	if serverErr != "" {
		w.errs[op]++
		if _, ok := w.errSample[serverErr]; ok || len(w.errSample) < maxErrorSamples {
			w.errSample[serverErr]++
		}
	}
}

// sendFrom is when an open-loop request intended to start at intended
// counts from, given when the worker last woke from an idle wait (see loop).
func sendFrom(intended, woke time.Time) time.Time {
	if woke.After(intended) {
		return woke
	}
	return intended
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
