// Package traffic drives the chaos suite's workloads against a cluster and
// records every operation's history and latency. Workloads talk to a cluster
// through KV, which the Docker cluster implements with go-redis and the
// in-process simulation with the coordinator itself, so one workload and one
// checker serve both.
package traffic

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Levels, as the server spells them.
const (
	One    = "ONE"
	Quorum = "QUORUM"
	All    = "ALL"
)

// Outcome is what a client can know about an operation.
type Outcome uint8

// Outcomes.
const (
	// OK: acknowledged.
	OK Outcome = iota
	// Failed: certainly not applied (UNAVAILABLE, refused before sending).
	Failed
	// Indeterminate: a write may or may not have landed (TIMEOUT, a cut
	// connection); a read told nothing.
	Indeterminate
)

func (o Outcome) String() string {
	return [...]string{"ok", "failed", "indeterminate"}[o]
}

// Kind is an operation's type.
type Kind uint8

// Kinds.
const (
	Put Kind = iota
	Get
	Del
	// Incr adds Op.Value (a decimal) to a counter.
	Incr
)

func (k Kind) String() string { return [...]string{"put", "get", "del", "incr"}[k] }

// KV is a cluster as a client sees it. Implementations must be safe for
// concurrent use; node picks the coordinator (0..Nodes()-1).
type KV interface {
	Nodes() int
	// Put writes value; ttl 0 means no expiry.
	Put(ctx context.Context, node int, key, value string, ttl time.Duration, level string) error
	Get(ctx context.Context, node int, key, level string) (value string, found bool, err error)
	Del(ctx context.Context, node int, key, level string) error
	// Incr adds delta to key's counter (INCRBY).
	Incr(ctx context.Context, node int, key string, delta int64, level string) error
	// Classify tells what an error returned by the methods above means.
	Classify(err error) Outcome
}

// Op is one operation in a history.
type Op struct {
	Workload string
	Kind     Kind
	Key      string
	// Value is what a Put wrote or a Get returned.
	Value string
	Found bool
	TTL   time.Duration
	Level string
	Node  int
	// Call and Return bracket the operation on the test's clock.
	Call, Return time.Time
	Outcome      Outcome
	Err          string
}

func (o Op) String() string {
	s := fmt.Sprintf("%s %s n%d %s %q", o.Call.Format("15:04:05.000"), o.Kind, o.Node+1, o.Level, o.Key)
	switch {
	case o.Kind == Incr:
		s += " += " + o.Value
	case o.Kind == Put:
		s += fmt.Sprintf(" = %q", o.Value)
		if o.TTL > 0 {
			s += fmt.Sprintf(" ttl=%v", o.TTL)
		}
	case o.Kind == Get && o.Outcome == OK && o.Found:
		s += fmt.Sprintf(" -> %q", o.Value)
	case o.Kind == Get && o.Outcome == OK:
		s += " -> (nil)"
	}
	s += fmt.Sprintf(" [%s, %v]", o.Outcome, o.Return.Sub(o.Call).Round(time.Millisecond))
	if o.Err != "" {
		s += " " + o.Err
	}
	return s
}

// Recorder keeps the history and the availability figures of a run. It is
// safe for concurrent use.
type Recorder struct {
	Avail *Availability
	mu    struct {
		sync.Mutex
		ops []Op
	}
}

// NewRecorder returns an empty recorder in phase "baseline".
func NewRecorder() *Recorder { return &Recorder{Avail: NewAvailability("baseline")} }

// Do runs one operation, timing it and classifying its error; fn fills in
// what a read returned.
func (r *Recorder) Do(kv KV, op Op, fn func(op *Op) error) Op {
	op.Call = time.Now()
	err := fn(&op)
	op.Return = time.Now()
	if err != nil {
		op.Outcome = kv.Classify(err)
		op.Err = err.Error()
	}
	r.Avail.Observe(op.Level, op.Outcome, op.Return.Sub(op.Call))
	r.mu.Lock()
	r.mu.ops = append(r.mu.ops, op)
	r.mu.Unlock()
	return op
}

// Ops returns a copy of the history so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.mu.ops...)
}

// Config sizes the workloads.
type Config struct {
	// WriteOnceWorkers each write fresh keys at QUORUM, back to back.
	WriteOnceWorkers int
	// Registers is the number of single-writer registers.
	Registers int
	// RegisterEpoch is how many writes a register makes to one key before
	// it moves to the next (default 200).
	RegisterEpoch int
	// RegisterReaders read random registers at QUORUM.
	RegisterReaders int
	// DeleteWorkers each run put-then-delete and put-with-TTL lifecycles.
	DeleteWorkers int
	// CounterWorkers each add small amounts to a few shared counters
	// through random nodes at once.
	CounterWorkers int
	// Pause between a worker's operations: it bounds history size, which the
	// linearizability check pays for, and CPU on a shared 2-core box.
	Pause time.Duration
	// OpTimeout is the client deadline of one operation.
	OpTimeout time.Duration
}

// Run starts every workload and blocks until ctx ends. Each worker draws its
// choices from its own generator, derived from seed, so a seed fixes what each
// worker does (not the interleaving a real network gives it).
func Run(ctx context.Context, kv KV, rec *Recorder, cfg Config, seed uint64) {
	var wg sync.WaitGroup
	worker := uint64(0)
	spawn := func(fn func(rnd *rand.Rand)) {
		worker++
		rnd := rand.New(rand.NewPCG(seed, worker))
		wg.Go(func() { fn(rnd) })
	}
	sleep := func(rnd *rand.Rand) bool {
		d := cfg.Pause/2 + time.Duration(rnd.Int64N(int64(cfg.Pause)+1))
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	opCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), cfg.OpTimeout)
	}

	// a) write-once keys.
	for w := range cfg.WriteOnceWorkers {
		spawn(func(rnd *rand.Rand) {
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("wo/%x/%d/%d", seed, w, i)
				node := rnd.IntN(kv.Nodes())
				c, cancel := opCtx()
				rec.Do(kv, Op{Workload: "write-once", Kind: Put, Key: key, Value: key, Level: Quorum, Node: node},
					func(*Op) error { return kv.Put(c, node, key, key, 0, Quorum) })
				cancel()
				if !sleep(rnd) {
					return
				}
			}
		})
	}

	// b) single-writer registers: one writer per register through one home
	// node, readers anywhere. Each register moves to a fresh key every
	// RegisterEpoch writes, so that each key's history stays small enough for
	// the linearizability check however long the run (Jepsen's independent
	// keys); readers follow the current key.
	epoch := cfg.RegisterEpoch
	if epoch <= 0 {
		epoch = 200
	}
	current := make([]atomic.Pointer[string], max(cfg.Registers, 1))
	for k := range cfg.Registers {
		spawn(func(rnd *rand.Rand) {
			node := k % kv.Nodes()
			var key string
			for v := 0; ctx.Err() == nil; v++ {
				if v%epoch == 0 {
					next := fmt.Sprintf("reg/%x/%d/%d", seed, k, v/epoch)
					current[k].Store(&next) // a fresh string each epoch: readers hold the old one
					key = next
				}
				// Values restart at 1 on each key: the checker reads them as
				// the writer's sequence numbers.
				val := fmt.Sprint(v%epoch + 1)
				c, cancel := opCtx()
				rec.Do(kv, Op{Workload: "register", Kind: Put, Key: key, Value: val, Level: Quorum, Node: node},
					func(*Op) error { return kv.Put(c, node, key, val, 0, Quorum) })
				cancel()
				if !sleep(rnd) {
					return
				}
			}
		})
	}
	for range cfg.RegisterReaders {
		spawn(func(rnd *rand.Rand) {
			for ctx.Err() == nil {
				kp := current[rnd.IntN(len(current))].Load()
				if kp == nil {
					if !sleep(rnd) {
						return
					}
					continue
				}
				key := *kp
				node := rnd.IntN(kv.Nodes())
				c, cancel := opCtx()
				rec.Do(kv, Op{Workload: "register", Kind: Get, Key: key, Level: Quorum, Node: node}, getter(c, kv, node, key, Quorum))
				cancel()
				if !sleep(rnd) {
					return
				}
			}
		})
	}

	// c) deletes and TTL expiry: each key lives one lifecycle, then is only read.
	for w := range cfg.DeleteWorkers {
		spawn(func(rnd *rand.Rand) {
			for i := 0; ctx.Err() == nil; i++ {
				deleteLifecycle(ctx, kv, rec, rnd, opCtx, sleep, fmt.Sprintf("dt/%x/%d/%d", seed, w, i))
			}
		})
	}
	// d) counters: every worker adds to the same few keys through random
	// nodes, so that increments through different coordinators race.
	for range cfg.CounterWorkers {
		spawn(func(rnd *rand.Rand) {
			for ctx.Err() == nil {
				key := fmt.Sprintf("ctr/%x/%d", seed, rnd.IntN(counterKeys))
				node, delta := rnd.IntN(kv.Nodes()), int64(1+rnd.IntN(9))
				c, cancel := opCtx()
				rec.Do(kv, Op{Workload: "counter", Kind: Incr, Key: key, Value: fmt.Sprint(delta), Level: Quorum, Node: node},
					func(*Op) error { return kv.Incr(c, node, key, delta, Quorum) })
				cancel()
				if !sleep(rnd) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// counterKeys is how many counters the counter workers share.
const counterKeys = 3

// deleteLifecycle writes a key and then either deletes it or lets it expire,
// reading it at random nodes and levels before and after.
func deleteLifecycle(ctx context.Context, kv KV, rec *Recorder, rnd *rand.Rand,
	opCtx func() (context.Context, context.CancelFunc), sleep func(*rand.Rand) bool, key string) {
	ttl := time.Duration(0)
	if rnd.IntN(2) == 0 {
		ttl = time.Duration(500+rnd.IntN(1500)) * time.Millisecond
	}
	node := rnd.IntN(kv.Nodes())
	c, cancel := opCtx()
	put := rec.Do(kv, Op{Workload: "delete-ttl", Kind: Put, Key: key, Value: key, TTL: ttl, Level: Quorum, Node: node},
		func(*Op) error { return kv.Put(c, node, key, key, ttl, Quorum) })
	cancel()
	if put.Outcome != OK {
		return // Never written again: nothing to delete, and reads would prove nothing.
	}
	if ttl == 0 {
		if !sleep(rnd) {
			return
		}
		node = rnd.IntN(kv.Nodes())
		c, cancel := opCtx()
		rec.Do(kv, Op{Workload: "delete-ttl", Kind: Del, Key: key, Level: Quorum, Node: node},
			func(*Op) error { return kv.Del(c, node, key, Quorum) })
		cancel()
	}
	levels := []string{One, Quorum, All}
	reads := 3 + rnd.IntN(3)
	for range reads {
		if !sleep(rnd) {
			return
		}
		node, lvl := rnd.IntN(kv.Nodes()), levels[rnd.IntN(len(levels))]
		c, cancel := opCtx()
		rec.Do(kv, Op{Workload: "delete-ttl", Kind: Get, Key: key, TTL: ttl, Level: lvl, Node: node}, getter(c, kv, node, key, lvl))
		cancel()
	}
}

func getter(ctx context.Context, kv KV, node int, key, level string) func(*Op) error {
	return func(op *Op) (err error) {
		op.Value, op.Found, err = kv.Get(ctx, node, key, level)
		return err
	}
}
