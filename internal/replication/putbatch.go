package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/peermethod"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/transport"
)

// MethodApplyBatch carries several writes to one replica in one request:
// count, then each write as MethodApply's payload, length-prefixed. The
// answer holds one entry per write, in order: a status byte (0 applied or
// superseded, then MethodApply's answer length-prefixed; 1 refused, then the
// error's text), so one write refused (clock skew) fails only itself.
const MethodApplyBatch = peermethod.ApplyBatch

// maxBatchWrites bounds a batch request's writes, so a hostile or broken
// peer cannot make a replica allocate for billions of them.
const maxBatchWrites = 1 << 12

// batchOp is one write of a PutBatch.
type batchOp struct {
	key      []byte
	rec      record.Record
	replicas []Replica
	// unsent is why the write was not sent at all (too few replicas up).
	unsent error
	tally  writeTally
}

// batchReply is one replica's answer to its share of a batch.
type batchReply struct {
	rep   *Replica
	ops   []int // indexes into the batch, in request order
	errs  []error
	newer []*record.Record // per write: a newer version the replica held
	err   error            // the whole request failed
}

// PutBatch writes muts[i] to keys[i] for every i, each under its own fresh
// version, exactly as Put would one after the other, and returns each write's
// error. It sends each replica node one request for all the writes it holds,
// instead of one per write: a pipeline of 16 SETs costs a replica one round
// trip and one request to serve, not 16. Keys must be distinct.
func (c *Coordinator) PutBatch(ctx context.Context, keys [][]byte, muts []Mutation, lvl Level) []error {
	start := clock.Mono()
	errs := make([]error, len(keys))
	if err := c.writeRefused(start); err != nil {
		for i := range errs {
			errs[i] = err
		}
		c.metrics.observeN("write", lvl, clock.Mono()-start, err, uint64(len(keys)))
		return errs
	}
	sc := getPutBatchScratch(len(keys))
	ops, toks := sc.ops, sc.toks
	var groups []replicaGroup
	local := sc.local
	outlive := false // hints for a down replica outlive this call
	// One wall-clock reading versions the whole batch, in order.
	ts := c.hlc.NowN(len(keys))
	for i, key := range keys {
		op := &ops[i]
		op.key = key
		tok := ring.Token(key)
		toks[i] = tok
		if c.cfg.HotKeys != nil {
			c.cfg.HotKeys.ObserveHashed(tok, key)
		}
		if c.cfg.HotCache != nil {
			defer c.cfg.HotCache.Invalidate(key)
		}
		reps, tally := c.writeReplicas(tok, lvl)
		op.replicas = reps
		if op.unsent = tally.check(); op.unsent != nil {
			continue
		}
		op.tally = tally
		op.rec = c.stampAt(muts[i], ts+clock.Timestamp(i))
		for j := range reps {
			r := &reps[j]
			switch {
			case !r.Up:
				outlive = true
			case c.isLocal(r):
				local = append(local, i)
			default:
				groups = addToGroup(groups, r, i, len(keys))
			}
		}
	}

	// Down replicas get their hints now; remote ones that fail get theirs
	// when their reply comes. Hints and requests outlive this call, and the
	// caller owns keys and values (a connection's read buffer).
	if len(groups) > 0 || outlive {
		// One copy of every key and value, not two allocations per write.
		size := 0
		for i := range ops {
			if ops[i].unsent == nil {
				size += len(ops[i].key) + len(ops[i].rec.Value)
			}
		}
		slab := make([]byte, 0, size)
		for i := range ops {
			op := &ops[i]
			if op.unsent != nil {
				continue
			}
			op.key, slab = carve(slab, op.key)
			if op.rec.Value != nil {
				op.rec.Value, slab = carve(slab, op.rec.Value)
			}
			for j := range op.replicas {
				if r := &op.replicas[j]; !r.Up {
					c.hint(r.ID, op.key, &op.rec)
				}
			}
		}
	}
	var replies chan batchReply
	var bg context.Context
	if len(groups) > 0 {
		replies = make(chan batchReply, len(groups))
		// The requests outlive this call once every write has its acks.
		flight := &inFlight{}
		bg, flight.cancel = c.detached(ctx)
		c.sendBatch(bg, flight, groups, ops, replies)
	}
	// The local replica goes after the requests are on their way.
	c.prefetch(toks, local)
	if len(local) > 0 {
		ws := sc.writes(len(local))
		for k, i := range local {
			ws[k] = storage.Write{Key: ops[i].key, Token: toks[i], Rec: ops[i].rec}
		}
		c.applyLocal(ws)
		for k, i := range local {
			op, w := &ops[i], &ws[k]
			if w.Err != nil {
				op.tally.fail(w.Err)
				continue
			}
			c.tallyApplied(&op.tally, w.Result.Applied, w.Result.PrevFound, &w.Result.Prev, &op.rec)
		}
	}
	open := 0
	for i := range ops {
		if ops[i].unsent == nil && !ops[i].tally.done() {
			open++
		}
	}
	var timeout <-chan struct{}
	if bg != nil {
		timeout = bg.Done()
	}
	inflight := len(groups)
	for open > 0 && inflight > 0 {
		select {
		case rp := <-replies:
			inflight--
			for k, i := range rp.ops {
				t := &ops[i].tally
				if t.done() {
					continue
				}
				err := rp.err
				if err == nil {
					err = rp.errs[k]
				}
				if err == nil && rp.newer[k] != nil && c.future(rp.newer[k]) {
					err = errHeldFuture // as in tallyApplied: not an ack
				}
				if err != nil {
					t.fail(err)
				} else {
					t.ack(rp.newer[k])
				}
				if t.done() {
					open--
				}
			}
		case <-ctx.Done():
			abandonOpen(ops, ctx.Err())
			open = 0
		case <-timeout:
			if errors.Is(bg.Err(), context.Canceled) {
				// Every request answered; the replies are buffered.
				timeout = nil
				continue
			}
			abandonOpen(ops, context.DeadlineExceeded)
			open = 0
		}
	}
	took := clock.Mono() - start
	for i := range ops {
		op := &ops[i]
		err := op.unsent
		if err == nil {
			err = op.tally.err()
		}
		errs[i] = err
		if newer := op.tally.newer; err == nil && newer != nil && c.hlc.Update(newer.Version.TS) == nil {
			// As Put does: go again under a version newer than the one
			// that superseded this write.
			c.metrics.superseded.Inc()
			_, _, errs[i] = c.Put(ctx, keys[i], muts[i], lvl)
			continue
		}
		c.metrics.observeTook("write", lvl, took, err)
	}
	if inflight == 0 && !outlive {
		// No request still out reads ops (remoteApplyBatch), and no hint
		// was taken from them: the scratch can serve the next batch.
		sc.local = local
		sc.put()
	}
	return errs
}

// putBatchScratch is the working memory of one PutBatch, pooled: a batch's
// ops and local writes are a few KiB (records, tallies, results), and
// allocating them for every pipeline of SETs was nine tenths of a
// single-node SET's garbage.
type putBatchScratch struct {
	ops   []batchOp
	toks  []uint64 // each key's token, taken once
	ws    []storage.Write
	local []int
}

var putBatchScratches = sync.Pool{New: func() any { return new(putBatchScratch) }}

func getPutBatchScratch(n int) *putBatchScratch {
	sc := putBatchScratches.Get().(*putBatchScratch)
	if cap(sc.ops) < n {
		sc.ops = make([]batchOp, n)
	}
	sc.ops = sc.ops[:n]
	sc.toks = slices.Grow(sc.toks[:0], n)[:n]
	sc.local = sc.local[:0]
	return sc
}

func (sc *putBatchScratch) writes(n int) []storage.Write {
	if cap(sc.ws) < n {
		sc.ws = make([]storage.Write, n)
	}
	sc.ws = sc.ws[:n]
	return sc.ws
}

func (sc *putBatchScratch) put() {
	if cap(sc.ops) > maxPooledBatch || cap(sc.ws) > maxPooledBatch {
		return
	}
	// Nothing the pool holds may keep a caller's keys and values alive.
	clear(sc.ops[:cap(sc.ops)])
	clear(sc.ws[:cap(sc.ws)])
	putBatchScratches.Put(sc)
}

// sendBatch sends each group its share of ops and answers on replies. It is
// apart from PutBatch so that only a batch with remote replicas moves the
// variables its goroutines share to the heap.
func (c *Coordinator) sendBatch(ctx context.Context, flight *inFlight, groups []replicaGroup, ops []batchOp, replies chan<- batchReply) {
	flight.add(int32(len(groups)))
	for _, g := range groups {
		payload := encodeApplyBatch(ops, g.idx)
		callers.run(func() {
			replies <- c.remoteApplyBatch(ctx, g.rep, g.idx, ops, payload)
			flight.done()
		})
	}
}

// carve appends b to slab, which has room for it, and returns the copy,
// capped so that an append to it cannot run into the next one.
func carve(slab, b []byte) (cp, rest []byte) {
	n := len(slab)
	slab = append(slab, b...)
	return slab[n:len(slab):len(slab)], slab
}

// replicaGroup is the part of a batch that goes to one replica node.
type replicaGroup struct {
	rep *Replica
	idx []int // indexes into the batch, in order
}

// addToGroup adds batch item i of n to r's group, starting the group if
// needed. Batches reach a handful of nodes, so a scan beats a map. A group
// starts with room for the whole batch: with RF 3 on a few nodes each group
// gets most of it, and growing one item at a time took five allocations.
func addToGroup(groups []replicaGroup, r *Replica, i, n int) []replicaGroup {
	k := 0
	for k < len(groups) && groups[k].rep.ID != r.ID {
		k++
	}
	if k == len(groups) {
		groups = append(groups, replicaGroup{rep: r, idx: make([]int, 0, n)})
	}
	groups[k].idx = append(groups[k].idx, i)
	return groups
}

// abandonOpen ends the wait for every write still open with err: its
// requests are out and their outcome is unknown.
func abandonOpen(ops []batchOp, err error) {
	for i := range ops {
		if op := &ops[i]; op.unsent == nil {
			op.tally.abandon(err)
		}
	}
}

// remoteApplyBatch sends rep its writes and hints every one it may have
// missed.
func (c *Coordinator) remoteApplyBatch(ctx context.Context, rep *Replica, idx []int, ops []batchOp, payload []byte) batchReply {
	rp := batchReply{rep: rep, ops: idx}
	resp, err := c.net.Call(ctx, rep.Addr, MethodApplyBatch, payload)
	if err == nil {
		rp.errs, rp.newer, err = decodeApplyBatchResp(resp, idx, ops, rep.Addr)
	}
	if err != nil {
		c.metrics.replicaErrors.WithLabelValues("apply").Inc()
		rp.err = err
		// A refusal would be refused again on replay.
		if !transport.IsRemote(err) {
			for _, i := range idx {
				c.hint(rep.ID, ops[i].key, &ops[i].rec)
			}
		}
	}
	return rp
}

// serveApplyBatch applies a MethodApplyBatch request's writes in order, in
// one local batch (see BatchApplier).
func (c *Coordinator) serveApplyBatch(from string, p []byte) ([]byte, error) {
	n, w := binary.Uvarint(p)
	if w <= 0 || n > maxBatchWrites {
		return nil, errWire
	}
	p = p[w:]
	// refused[k] is item k's refusal; the others are in ws, in order.
	sc := replicaScratches.Get().(*replicaScratch)
	defer sc.put()
	refused := slices.Grow(sc.refused[:0], int(n))[:n]
	ws := slices.Grow(sc.ws[:0], int(n))
	toks := slices.Grow(sc.toks[:0], int(n))
	sc.refused, sc.ws = refused, ws
	for k := range refused {
		one, rest, err := readBytes(p)
		if err != nil {
			return nil, err
		}
		p = rest
		key, rec, err := c.acceptApply(from, one)
		if err != nil {
			refused[k] = err
			continue
		}
		// The token, taken once, serves the prefetch and the apply.
		tok := ring.Token(key)
		ws = append(ws, storage.Write{Key: key, Token: tok, Rec: rec})
		toks = append(toks, tok)
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errWire, len(p))
	}
	sc.ws, sc.toks = ws, toks
	c.prefetchAll(toks)
	c.applyLocal(ws)
	out := binary.AppendUvarint(make([]byte, 0, 64*n), n)
	scratch := sc.answer[:0]
	defer func() { sc.answer = scratch }()
	for _, err := range refused {
		if err == nil {
			w := &ws[0]
			ws = ws[1:]
			if err = w.Err; err == nil {
				// The coordinator reads a batched write's previous record
				// only when it was not applied (superseding): an applied
				// write's answer leaves it out, and with it a copy of the
				// old value on the wire for every replica of every write.
				scratch = appendApplyResp(scratch[:0], w.Result.Applied, &w.Result.Prev, w.Result.PrevFound && !w.Result.Applied)
			}
		}
		out = appendAnswer(out, scratch, err)
	}
	return out, nil
}

// replicaScratch is a replica's working memory for one MethodApplyBatch,
// pooled: its writes (with their results) were 4 KiB a batch of 16, on
// every replica of every pipelined write. Nothing in it outlives the call.
type replicaScratch struct {
	refused []error
	ws      []storage.Write
	toks    []uint64
	answer  []byte
}

var replicaScratches = sync.Pool{New: func() any { return new(replicaScratch) }}

func (sc *replicaScratch) put() {
	if cap(sc.ws) > maxPooledBatch || cap(sc.answer) > 64<<10 {
		return
	}
	// Keys and values alias the request, which the transport reuses.
	clear(sc.refused[:cap(sc.refused)])
	clear(sc.ws[:cap(sc.ws)])
	replicaScratches.Put(sc)
}

// BatchApplier is a LocalStore that can apply several writes in one commit,
// as storage.Store does: a pipeline's writes, or a peer's batch request,
// then take one pass through the store's commit path instead of one each.
// Optional: without it each write is applied on its own.
type BatchApplier interface {
	ApplyBatch(ws []storage.Write)
}

// applyLocal applies ws to the local replica, as ApplyBatch does.
func (c *Coordinator) applyLocal(ws []storage.Write) {
	if c.batcher != nil {
		c.batcher.ApplyBatch(ws)
		return
	}
	for i := range ws {
		w := &ws[i]
		w.Result, w.Err = c.local.Apply(w.Key, w.Rec)
	}
}

// serveBatch answers a batch request (count, then each item length-prefixed)
// with one entry per item, in order: 0 and item's answer, or 1 and its error,
// so that one item refused fails only itself. A request that is not well
// framed fails whole. item appends its answer to dst, a buffer reused from
// item to item.
func serveBatch(p []byte, item func(dst, one []byte) ([]byte, error)) ([]byte, error) {
	n, w := binary.Uvarint(p)
	if w <= 0 || n > maxBatchWrites {
		return nil, errWire
	}
	p = p[w:]
	out := binary.AppendUvarint(make([]byte, 0, 64*n), n)
	var scratch []byte
	for range n {
		one, rest, err := readBytes(p)
		if err != nil {
			return nil, err
		}
		p = rest
		scratch, err = item(scratch[:0], one)
		out = appendAnswer(out, scratch, err)
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errWire, len(p))
	}
	return out, nil
}

// appendAnswer appends one item's entry of a batch answer: 0 and body, or 1
// and err's text when err is set.
func appendAnswer(out, body []byte, err error) []byte {
	if err != nil {
		return appendBytes(append(out, 1), []byte(err.Error()))
	}
	return appendBytes(append(out, 0), body)
}

// decodeBatch reads serveBatch's answer to a request of want items, calling
// item for each answered one; an item the peer refused gets its error as a
// RemoteError in the returned slice.
func decodeBatch(p []byte, want int, peer string, item func(k int, body []byte) error) ([]error, error) {
	n, w := binary.Uvarint(p)
	if w <= 0 || n != uint64(want) {
		return nil, errWire
	}
	p = p[w:]
	errs := make([]error, want)
	for k := range errs {
		if len(p) < 1 {
			return nil, errWire
		}
		status := p[0]
		body, rest, err := readBytes(p[1:])
		if err != nil {
			return nil, err
		}
		p = rest
		switch status {
		case 0:
			if err := item(k, body); err != nil {
				return nil, err
			}
		case 1:
			errs[k] = &transport.RemoteError{Peer: peer, Message: string(body)}
		default:
			return nil, errWire
		}
	}
	if len(p) != 0 {
		return nil, errWire
	}
	return errs, nil
}

func encodeApplyBatch(ops []batchOp, idx []int) []byte {
	size := binary.MaxVarintLen64
	for _, i := range idx {
		size += binary.MaxVarintLen64 + applyLen(ops[i].key, &ops[i].rec)
	}
	b := binary.AppendUvarint(make([]byte, 0, size), uint64(len(idx)))
	for _, i := range idx {
		op := &ops[i]
		b = binary.AppendUvarint(b, uint64(applyLen(op.key, &op.rec)))
		b = appendApply(b, op.key, &op.rec)
	}
	return b
}

// decodeApplyBatchResp returns each write's outcome (nil, or the replica's
// refusal as a RemoteError) and, for a write the replica did not apply because
// it held a newer version, that version.
func decodeApplyBatchResp(p []byte, idx []int, ops []batchOp, peer string) ([]error, []*record.Record, error) {
	newer := make([]*record.Record, len(idx))
	errs, err := decodeBatch(p, len(idx), peer, func(k int, body []byte) error {
		applied, prev, found, err := decodeApplyResp(body)
		if err == nil && superseding(applied, found, &prev, &ops[idx[k]].rec) != nil {
			// A copy, allocated only here: the transport owns body, and
			// taking prev's own address moved it to the heap for every
			// write, superseded or not.
			held := prev.Clone()
			newer[k] = &held
		}
		return err
	})
	return errs, newer, err
}
