package resp

import (
	"bytes"
	"context"
	"sync"

	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
)

// maxBatch bounds the commands of one pipeline run concurrently: a client
// pipelining thousands of commands gets them run in slices, not all at once.
const maxBatch = 64

// batchOp is one plain GET or SET of a pipeline, run concurrently with the
// others of its batch.
type batchOp struct {
	set      bool
	key, val []byte // alias the reader's buffer: valid until the next Fill
	rec      record.Record
	found    bool
	err      error
}

// batch collects consecutive plain GETs and SETs of a pipeline so that they
// run concurrently. In a cluster each one waits a round trip to the replicas;
// run one after the other, a pipeline of 16 costs 16 round trips and
// pipelining buys nothing. Replies still go out in command order, and two
// commands on the same key never share a batch, so each key sees its commands
// in order; only the interleaving of different keys' commands within one
// pipeline is unordered, which no client of one connection can observe
// without another connection racing it.
type batch struct {
	ops []batchOp
	wg  sync.WaitGroup
	// The SETs of a batch, for a backend that writes them in one go.
	keys [][]byte
	muts []replication.Mutation
	sets []int // their indexes in ops
	// The GETs of a batch, for a backend that reads them in one go.
	getKeys [][]byte
	gets    []int
	// results is the GETs' answers, kept from batch to batch and cleared
	// after each: its Values alias stored records.
	results []replication.GetResult
	tasks   []func()
}

// BatchPutter is a Backend that can write several keys at once, each as Put
// would, with fewer round trips; a cluster coordinator sends each replica
// one request for the writes it holds. Keys are distinct. Batched SETs of a
// pipeline go through it when the backend implements it.
type BatchPutter interface {
	PutBatch(ctx context.Context, keys [][]byte, muts []replication.Mutation, lvl replication.Level) []error
}

// GetBatcher is a Backend that can read several keys at once, each as Get
// would; batched GETs of a pipeline go through it when the backend has it.
// The results go into dst's memory when it has room (the connection passes
// the same slice for each of its batches) and are returned.
type GetBatcher interface {
	GetBatchInto(ctx context.Context, dst []replication.GetResult, keys [][]byte, lvl replication.Level) []replication.GetResult
}

// batchable reports whether args is a plain GET or SET that passes every check
// its command would make, so the batch can skip them.
func (c *conn) batchable(args [][]byte) bool {
	if !c.authed || !c.s.cfg.ConcurrentPipeline || c.inMulti {
		return false
	}
	if l := c.s.cfg.Loading; l != nil && l() != nil {
		return false // exec gives the LOADING reply
	}
	var set bool
	switch {
	case len(args) == 2 && len(args[0]) == 3 && bytes.EqualFold(args[0], []byte("get")):
	case len(args) == 3 && len(args[0]) == 3 && bytes.EqualFold(args[0], []byte("set")):
		set = true
	default:
		return false
	}
	need := auth.Read
	if set {
		need = auth.Write
	}
	if !c.rights.Has(need) {
		return false // exec answers NOPERM
	}
	key := args[1]
	if len(key) == 0 || len(key) > c.s.cfg.MaxKeyBytes || (set && len(args[2]) > c.s.cfg.MaxValueBytes) {
		return false
	}
	return true
}

// add queues a batchable command; it runs the batch first when the command's
// key is already in it or the batch is full.
func (c *conn) add(args [][]byte) {
	key := args[1]
	for i := range c.batch.ops {
		if bytes.Equal(c.batch.ops[i].key, key) {
			c.runBatch()
			break
		}
	}
	if len(c.batch.ops) >= maxBatch {
		c.runBatch()
	}
	op := batchOp{key: key, set: len(args) == 3}
	if op.set {
		op.val = args[2]
	}
	c.batch.ops = append(c.batch.ops, op)
}

// runBatch runs the queued commands concurrently and writes their replies in
// order. A batch of one runs as an ordinary command.
func (c *conn) runBatch() {
	ops := c.batch.ops
	switch len(ops) {
	case 0:
		return
	case 1:
		c.batch.ops = ops[:0]
		if ops[0].set {
			c.exec([][]byte{[]byte("set"), ops[0].key, ops[0].val})
		} else {
			c.exec([][]byte{[]byte("get"), ops[0].key})
		}
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	b := c.s.b
	level := c.level
	bp, gb := c.s.putBatcher, c.s.getBatcher
	c.batch.keys, c.batch.muts, c.batch.sets = c.batch.keys[:0], c.batch.muts[:0], c.batch.sets[:0]
	c.batch.getKeys, c.batch.gets = c.batch.getKeys[:0], c.batch.gets[:0]
	for i := range ops {
		switch {
		case ops[i].set && bp != nil:
			c.batch.keys = append(c.batch.keys, ops[i].key)
			c.batch.muts = append(c.batch.muts, replication.Mutation{Value: ops[i].val})
			c.batch.sets = append(c.batch.sets, i)
		case !ops[i].set && gb != nil:
			c.batch.getKeys = append(c.batch.getKeys, ops[i].key)
			c.batch.gets = append(c.batch.gets, i)
		}
	}
	// A lone SET or GET gains nothing from a batch call.
	batched, getBatched := len(c.batch.sets) > 1, len(c.batch.gets) > 1
	// Every task but the last runs on its own goroutine; the last runs on
	// this one, so a batch of only SETs or only GETs (the common pipeline)
	// starts no goroutine at all.
	tasks := c.batch.tasks[:0]
	if batched {
		tasks = append(tasks, func() {
			errs := bp.PutBatch(ctx, c.batch.keys, c.batch.muts, level)
			for k, i := range c.batch.sets {
				ops[i].err = errs[k]
			}
		})
	}
	if getBatched {
		tasks = append(tasks, func() {
			res := gb.GetBatchInto(ctx, c.batch.results, c.batch.getKeys, level)
			for k, i := range c.batch.gets {
				ops[i].rec, ops[i].found, ops[i].err = res[k].Rec, res[k].Found, res[k].Err
			}
			clear(res)
			if cap(res) <= maxBatch {
				c.batch.results = res[:0]
			}
		})
	}
	for i := range ops {
		op := &ops[i]
		if (op.set && batched) || (!op.set && getBatched) {
			continue
		}
		tasks = append(tasks, func() {
			if op.set {
				_, _, op.err = b.Put(ctx, op.key, replication.Mutation{Value: op.val}, level)
			} else {
				op.rec, op.found, op.err = b.Get(ctx, op.key, level)
			}
		})
	}
	for _, task := range tasks[:len(tasks)-1] {
		c.batch.wg.Go(task)
	}
	tasks[len(tasks)-1]()
	clear(tasks)
	c.batch.tasks = tasks[:0]
	c.batch.wg.Wait()
	clear(c.batch.keys)
	clear(c.batch.muts)
	clear(c.batch.getKeys)
	end := clock.Mono()
	elapsed := end - c.mark
	c.mark = end
	nowMS := c.nowMS()
	for i := range ops {
		op := &ops[i]
		name := "get"
		if op.set {
			name = "set"
		}
		cmd := c.s.commands[name]
		c.tally.Call(cmd.count)
		c.tally.Observe(cmd.latency, elapsed)
		c.lastCmd = name
		switch {
		case op.err != nil && op.set:
			c.backendError(op.err)
		case op.err != nil:
			c.readError(op.err)
		case op.set:
			c.w.OK()
		default:
			c.replyValue(live(op.rec, op.found, nowMS))
		}
		*op = batchOp{}
	}
	c.batch.ops = ops[:0]
}
