package replication

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/peermethod"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
)

// MethodGetBatch reads several keys from one replica: count, then each key
// length-prefixed. The answer holds, per key in order, a status byte (0, then
// MethodGet's answer length-prefixed; 1, then an error's text). This version
// sends MethodReadBatch instead and serves MethodGetBatch for coordinators of
// the versions before it.
const MethodGetBatch = peermethod.GetBatch

// MethodReadBatch reads several keys from one replica, each whole or as a
// digest: count, then each item length-prefixed, a mode byte (readWhole or
// readDigest) and the key. The answer is MethodGetBatch's; a digest is
// MethodGet's answer for the record with its value replaced by the value's
// 8-byte xxhash (big-endian). A coordinator that reads a key itself needs
// only its peers' versions to resolve it: for 100-byte values a digest
// answer is a quarter of a whole one, and nothing is compared byte for byte.
// Nodes of the version before it answer it with an error, which sends the
// keys to the single-key path: a mixed cluster reads correctly, if slower.
const MethodReadBatch = peermethod.ReadBatch

// Item modes of a MethodReadBatch.
const (
	readWhole  byte = 0
	readDigest byte = 1
)

// GetResult is one read of a GetBatch.
type GetResult struct {
	Rec   record.Record
	Found bool
	Err   error
}

// getOp is one key of a GetBatch that is read through batched requests.
type getOp struct {
	reps    []Replica
	local   *Replica // this node, when it is one of the replicas asked
	answers []readResult
	// solo is an inline read's replicas, when it has others to repair.
	solo   []Replica
	failed bool // a replica asked did not answer: Get decides it instead
}

// getScratch is the working memory of one GetBatch, pooled: a pipeline of
// 16 GETs on three nodes allocated 13 KB of it per batch (each key's answers
// alone are two 100-byte readResults), a third of what a clustered GET
// allocated. Nothing in it outlives the call: answers are copied out by
// value, and every goroutine that sees it is waited for.
type getScratch struct {
	ops     []getOp
	toks    []uint64 // each key's token, taken once
	local   []int
	inline  []int
	single  []int
	hot     []int
	live    []*Replica
	answers []readResult
	// wg waits for the keys read by get beside the batch; here, not on
	// GetBatch's stack, because the goroutines it starts would move it
	// to the heap on every call.
	wg sync.WaitGroup
}

// maxPooledBatch bounds the batches whose scratch is kept: an MGET of many
// thousand keys should not pin its memory in the pool.
const maxPooledBatch = 1024

var getScratchPool = sync.Pool{New: func() any { return new(getScratch) }}

// peerAnswers holds one peer's answers to a MethodGetBatch, pooled for the
// same reason as getScratch: GetBatch copies them out by value.
type peerAnswers struct{ a []readResult }

var peerAnswersPool = sync.Pool{New: func() any { return new(peerAnswers) }}

func (p *peerAnswers) release() {
	if cap(p.a) > maxPooledBatch {
		return
	}
	clear(p.a)
	p.a = p.a[:0]
	peerAnswersPool.Put(p)
}

func (g *getScratch) release() {
	if cap(g.ops) > maxPooledBatch {
		return
	}
	clear(g.ops[:cap(g.ops)])
	clear(g.answers[:cap(g.answers)])
	clear(g.live[:cap(g.live)])
	g.local, g.inline, g.single, g.hot = g.local[:0], g.inline[:0], g.single[:0], g.hot[:0]
	getScratchPool.Put(g)
}

// GetBatch reads keys[i] at lvl for every i and returns each outcome, as Get
// would. Reads that need more than one replica ask each peer once for all the
// keys it is to answer, instead of once per key. A key whose batched answers
// are incomplete (a peer failed or timed out), a hot key, and a read that one
// replica answers are left to get, which speculates and retries; the batched
// reads themselves do not speculate. Stale replicas among the answers are
// repaired before GetBatch returns, as Get does at QUORUM and ALL.
func (c *Coordinator) GetBatch(ctx context.Context, keys [][]byte, lvl Level) []GetResult {
	return c.GetBatchInto(ctx, nil, keys, lvl)
}

// GetBatchInto is GetBatch writing its results over dst's memory when it has
// room, so a caller that reads pipeline after pipeline (a client connection)
// reuses one slice: a fresh one per batch, 16 results holding pointers, was
// a third of a 3-node coordinator's allocation under a pipelined GET load.
// The results overwrite dst[:len(keys)]; the caller should clear them once
// used, since their Values keep what they alias alive.
func (c *Coordinator) GetBatchInto(ctx context.Context, dst []GetResult, keys [][]byte, lvl Level) []GetResult {
	start := clock.Mono()
	out := slices.Grow(dst[:0], len(keys))[:len(keys)]
	clear(out)
	scratch := getScratchPool.Get().(*getScratch)
	defer scratch.release()
	ops := slices.Grow(scratch.ops[:0], len(keys))[:len(keys)]
	scratch.ops = ops
	toks := slices.Grow(scratch.toks[:0], len(keys))[:len(keys)]
	scratch.toks = toks
	single := scratch.single[:0] // answered by get, concurrently
	hot := scratch.hot[:0]       // hot keys, answered by get, concurrently
	inline := scratch.inline[:0] // answered on this goroutine: no network
	var peers []replicaGroup
	local := scratch.local[:0]
	// Every key's live replicas and answers come from two slabs, reused
	// from batch to batch through the pool.
	liveSlab := scratch.live[:0]
	answerSlab := scratch.answers[:0]
	turn := int(c.batchTurn.Add(1))
	for i, key := range keys {
		// Every key is counted here, once; the keys left to get are not
		// counted again.
		tok := ring.Token(key)
		toks[i] = tok
		if c.cfg.HotKeys != nil && c.cfg.HotKeys.ObserveHashed(tok, key) {
			hot = append(hot, i)
			continue
		}
		reps := c.topo.ReplicasAt(tok)
		need := lvl.Required(len(reps))
		if cap(liveSlab)-len(liveSlab) < len(reps) {
			// A new slab: the live slices taken so far keep the old one.
			liveSlab = make([]*Replica, 0, max(len(keys)*len(reps), 2*cap(liveSlab)))
		}
		from := len(liveSlab)
		liveSlab = c.appendLive(liveSlab, reps)
		live := liveSlab[from:len(liveSlab):len(liveSlab)]
		if need == 1 && len(live) > 0 && c.isLocal(live[0]) {
			// This node answers alone: Get's fast path, inline.
			inline = append(inline, i)
			if len(live) > 1 {
				ops[i].solo = reps
			}
			continue
		}
		if need <= 1 || len(live) < need {
			single = append(single, i)
			continue
		}
		ops[i].reps = reps
		if cap(answerSlab)-len(answerSlab) < need {
			answerSlab = make([]readResult, 0, max(need*(len(keys)-i), 2*cap(answerSlab)))
		}
		n := len(answerSlab)
		answerSlab = answerSlab[:n+need]
		ops[i].answers = answerSlab[n : n : n+need]
		rest, want := live, need
		if c.isLocal(live[0]) {
			ops[i].local = live[0]
			local = append(local, i)
			rest, want = live[1:], need-1
		}
		peers = askPeers(peers, rest, want, i, len(keys), turn)
	}
	// The pool keeps the newest slabs: the live slices taken from an older
	// one still point into it until the call ends.
	scratch.live, scratch.answers, scratch.local = liveSlab, answerSlab, local
	scratch.inline, scratch.single, scratch.hot = inline, single, hot

	type peerReply struct {
		req     *replicaGroup
		answers *peerAnswers
		err     error
	}
	// Only peer requests wait on the network: a batch with none (every key
	// of a single node's pipeline) needs no timer and no channel. The last
	// peer to ask (the only one, in every pipeline of a 3-node QUORUM
	// cluster) is asked by this goroutine once its local reads are done: a
	// goroutine of its own, to overlap the reads with the round trip, costs
	// more CPU than the reads take.
	wait := ctx
	var replies chan peerReply
	if len(peers) > 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	if len(peers) > 1 {
		replies = make(chan peerReply, len(peers)-1)
		// Copies for the goroutines: capturing the variables themselves,
		// which are assigned twice, would move both to the heap on every
		// call, a single node's included.
		wait, replies := wait, replies
		for k := range peers[:len(peers)-1] {
			req := &peers[k]
			callers.run(func() {
				answers, err := c.readBatch(wait, req.rep, keys, req.idx, ops)
				replies <- peerReply{req: req, answers: answers, err: err}
			})
		}
	}
	// Keys read by Get run beside the batched requests.
	wg := &scratch.wg
	for _, i := range single {
		wg.Go(func() {
			out[i].Rec, out[i].Found, out[i].Err = c.get(ctx, toks[i], keys[i], lvl, false)
		})
	}
	for _, i := range hot {
		wg.Go(func() {
			out[i].Rec, out[i].Found, out[i].Err = c.get(ctx, toks[i], keys[i], lvl, true)
		})
	}
	c.prefetch(toks, inline, local)
	c.readInline(ctx, keys, toks, inline, ops, out, lvl, start)
	for _, i := range local {
		ops[i].answers = append(ops[i].answers, c.read(wait, ops[i].local, toks[i], keys[i]))
	}
	take := func(rp peerReply) {
		for n, i := range rp.req.idx {
			if rp.err != nil {
				ops[i].failed = true
				continue
			}
			ops[i].answers = append(ops[i].answers, rp.answers.a[n])
		}
		if rp.answers != nil {
			rp.answers.release()
		}
	}
	if n := len(peers); n > 0 {
		last := &peers[n-1]
		answers, err := c.readBatch(wait, last.rep, keys, last.idx, ops)
		take(peerReply{req: last, answers: answers, err: err})
		for range n - 1 {
			take(<-replies)
		}
	}
	took := clock.Mono() - start
	resolved := 0
	for i := range ops {
		op := &ops[i]
		if op.reps == nil {
			continue
		}
		for _, a := range op.answers {
			if a.err != nil {
				op.failed = true
			}
		}
		if op.failed {
			wg.Go(func() {
				out[i].Rec, out[i].Found, out[i].Err = c.get(ctx, toks[i], keys[i], lvl, false)
			})
			continue
		}
		var rec record.Record
		var found bool
		var stale []*Replica
		if op.local != nil {
			var ok bool
			if rec, found, stale, ok = resolveDigests(op.answers); !ok || found && c.future(&rec) {
				// Digests cannot be resolved without the local record,
				// which here is from the future: get reads the values.
				wg.Go(func() {
					out[i].Rec, out[i].Found, out[i].Err = c.get(ctx, toks[i], keys[i], lvl, false)
				})
				continue
			}
		} else {
			rec, found, stale = c.resolve(op.answers)
		}
		out[i].Rec, out[i].Found = rec, found
		resolved++
		if found && len(stale) > 0 {
			c.metrics.readRepairs.Add(float64(len(stale)))
			wg.Go(func() { c.repair(ctx, keys[i], &out[i].Rec, stale) })
		}
	}
	if resolved > 0 {
		c.metrics.observeN("read", lvl, took, nil, uint64(resolved))
	}
	wg.Wait()
	return out
}

// readInline reads keys[i], whose token is toks[i], for every i in idx from
// the local replica, which answers them alone: get's fast path without its
// per-key work (the replica lookup GetBatch has done, two clock readings,
// and a latency and a count recorded per key, together a tenth of a single
// node's CPU under a pipelined GET load). Like the batch's other keys, each
// counts the batch's time so far. A key whose local read fails is left to
// get, which asks a peer.
func (c *Coordinator) readInline(ctx context.Context, keys [][]byte, toks []uint64, idx []int, ops []getOp, out []GetResult, lvl Level, start time.Duration) {
	if len(idx) == 0 {
		return
	}
	read := 0
	for _, i := range idx {
		rec, found, err := c.local.GetAt(toks[i], keys[i])
		if err != nil || found && c.future(&rec) {
			// get asks a peer when the local read fails or holds a
			// version from the future.
			out[i].Rec, out[i].Found, out[i].Err = c.get(ctx, toks[i], keys[i], lvl, false)
			continue
		}
		out[i].Rec, out[i].Found = rec, found
		read++
		if reps := ops[i].solo; reps != nil {
			c.maybeRepair(ctx, keys[i], reps)
		}
	}
	c.metrics.replicaReads.Add(uint64(read))
	c.metrics.observeN("read", lvl, clock.Mono()-start, nil, uint64(read))
}

// askPeers adds key i of a batch of n to the groups of want replicas among
// cands, its live remote replicas in ring order. Peers the batch already asks
// come first: when the keys share their replicas (every key does when RF is
// the node count), the batch asks one peer for all of them, not each peer
// for a part, which halved the requests a 3-node QUORUM pipeline sent,
// served and waited for. Other picks start at a position that turns with
// each batch, so that successive batches spread over the replicas.
func askPeers(groups []replicaGroup, cands []*Replica, want, i, n, turn int) []replicaGroup {
	if len(cands) > 64 { // more than any replica set; keep ring order
		for _, r := range cands[:want] {
			groups = addToGroup(groups, r, i, n)
		}
		return groups
	}
	var taken uint64
	for k, r := range cands {
		if want == 0 {
			return groups
		}
		if asked(groups, r) {
			groups = addToGroup(groups, r, i, n)
			taken |= 1 << k
			want--
		}
	}
	for j := range cands {
		if want == 0 {
			break
		}
		k := (turn + j) % len(cands)
		if taken&(1<<k) != 0 {
			continue
		}
		groups = addToGroup(groups, cands[k], i, n)
		taken |= 1 << k
		want--
	}
	return groups
}

// asked reports whether a group for r exists.
func asked(groups []replicaGroup, r *Replica) bool {
	for k := range groups {
		if groups[k].rep.ID == r.ID {
			return true
		}
	}
	return false
}

// readBatch asks rep for the keys at idx, answering each in order: a digest
// for a key this node reads itself (ops[i].local set), the whole record for
// the others. The answers are the caller's to release once copied out.
func (c *Coordinator) readBatch(ctx context.Context, rep *Replica, keys [][]byte, idx []int, ops []getOp) (*peerAnswers, error) {
	size := 10
	for _, i := range idx {
		size += 11 + len(keys[i])
	}
	p := binary.AppendUvarint(make([]byte, 0, size), uint64(len(idx)))
	for _, i := range idx {
		mode := readWhole
		if ops[i].local != nil {
			mode = readDigest
		}
		p = append(binary.AppendUvarint(p, uint64(1+len(keys[i]))), mode)
		p = append(p, keys[i]...)
	}
	resp, err := c.net.Call(ctx, rep.Addr, MethodReadBatch, p)
	if err != nil {
		c.metrics.replicaErrors.WithLabelValues("get").Inc()
		return nil, err
	}
	pa := peerAnswersPool.Get().(*peerAnswers)
	pa.a = slices.Grow(pa.a[:0], len(idx))[:len(idx)]
	out := pa.a
	// resp is ours (the Transport contract): the values alias it rather
	// than being copied out, which was a third of the bytes a 3-node
	// coordinator allocated under a pipelined GET load.
	errs, err := decodeBatch(resp, len(idx), rep.Addr, func(k int, body []byte) error {
		rec, found, err := decodeGetResp(body)
		out[k].rec, out[k].found = rec, found
		return err
	})
	if err != nil {
		pa.release()
		return nil, err
	}
	for k, i := range idx {
		out[k].rep, out[k].err = rep, errs[k]
		out[k].digest = ops[i].local != nil
	}
	return pa, nil
}

// serveReadBatch answers a MethodReadBatch request from the local replica.
func (c *Coordinator) serveReadBatch(p []byte) ([]byte, error) {
	c.prefetchBatch(p, func(item []byte) []byte {
		if len(item) == 0 {
			return nil
		}
		return item[1:]
	})
	return serveBatch(p, func(dst, item []byte) ([]byte, error) {
		if len(item) == 0 || item[0] > readDigest {
			return dst, fmt.Errorf("%w: read item without a known mode", errWire)
		}
		c.metrics.replicaReads.Inc()
		rec, found, err := c.local.Get(item[1:])
		if err != nil {
			return dst, err
		}
		if item[0] == readDigest {
			return appendDigestResp(dst, &rec, found), nil
		}
		return appendGetResp(dst, &rec, found), nil
	})
}

// appendDigestResp appends MethodGet's answer for rec with its value
// replaced by valueDigest's.
func appendDigestResp(dst []byte, rec *record.Record, found bool) []byte {
	if !found {
		return append(dst, 0)
	}
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], valueDigest(rec.Value))
	d := *rec
	d.Value = sum[:]
	return d.AppendEncode(append(dst, 1))
}

func valueDigest(v []byte) uint64 { return xxhash.Sum64(v) }

// resolveDigests is resolve for a key this node read itself (the answer
// without digest) and its peers answered by digest. It picks the local
// record when no peer holds anything newer or different, listing the peers
// that hold something older, or nothing. ok is false when a peer's digest
// is newer than the local record, or equal in version with another value:
// the value that wins is then one only that peer has, and the key must be
// read whole.
func resolveDigests(answers []readResult) (rec record.Record, found bool, stale []*Replica, ok bool) {
	var local *readResult
	for i := range answers {
		if !answers[i].digest {
			local = &answers[i]
			break
		}
	}
	if local == nil {
		return rec, false, nil, false
	}
	for i := range answers {
		a := &answers[i]
		if !a.digest {
			continue
		}
		switch {
		case !a.found && !local.found:
		case !a.found:
			stale = append(stale, a.rep)
		case !local.found:
			return rec, false, nil, false
		case local.rec.Counter != nil || a.rec.Counter != nil:
			// Counter states merge (see resolve): read them whole.
			return rec, false, nil, false
		default:
			c := record.CompareMeta(&local.rec, &a.rec)
			if c < 0 || c == 0 && (len(a.rec.Value) != 8 || binary.BigEndian.Uint64(a.rec.Value) != valueDigest(local.rec.Value)) {
				return rec, false, nil, false
			}
			if c > 0 {
				stale = append(stale, a.rep)
			}
		}
	}
	return local.rec, local.found, stale, true
}

// serveGetBatch answers a MethodGetBatch request from the local replica.
func (c *Coordinator) serveGetBatch(p []byte) ([]byte, error) {
	c.prefetchBatch(p, itself)
	return serveBatch(p, func(dst, key []byte) ([]byte, error) {
		c.metrics.replicaReads.Inc()
		rec, found, err := c.local.Get(key)
		if err != nil {
			return dst, err
		}
		return appendGetResp(dst, &rec, found), nil
	})
}
