package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"time"
)

// NoTTL is what TTL returns for a key that exists and never expires.
const NoTTL time.Duration = -1

func applyCall(opts []Option) callOptions {
	var o callOptions
	for _, opt := range opts {
		opt.applyCall(&o)
	}
	return o
}

// routed runs a single-key command on key's replicas.
func (c *Client) routed(ctx context.Context, name string, k kind, key string, lvl Level, cmd []byte) (reply, error) {
	t := c.topo.Load()
	if t == nil {
		return reply{}, ErrClosed
	}
	return c.exec(ctx, name, k, c.candidates(t, key), request{cmd: cmd, level: c.level(lvl)})
}

// Get returns the value of key, or an error wrapping ErrNotFound when the key
// does not exist. It is a read: on a replica that cannot be reached or cannot
// gather its level's answers in time, it is retried on the key's next replica.
func (c *Client) Get(ctx context.Context, key string, opts ...Option) ([]byte, error) {
	o := applyCall(opts)
	var f fill
	if c.cache != nil {
		if !o.noCache {
			if v, found, ok := c.cache.get(key); ok {
				c.m.cache.WithLabelValues("hit").Inc()
				if !found {
					return nil, fmt.Errorf("client: GET %q: %w", key, ErrNotFound)
				}
				return v, nil
			}
			c.m.cache.WithLabelValues("miss").Inc()
		}
		f = c.cache.begin()
	}
	cmd := appendBulkString(appendBulkString(appendArrayLen(make([]byte, 0, 24+len(key)), 2), "GET"), key)
	r, err := c.routed(ctx, "GET", read, key, o.level, cmd)
	if err != nil {
		return nil, err
	}
	if r.kind != '$' {
		return nil, r.unexpected("GET")
	}
	if c.cache != nil {
		c.cache.put(key, r.str, !r.null, f)
	}
	if r.null {
		return nil, fmt.Errorf("client: GET %q: %w", key, ErrNotFound)
	}
	return r.str, nil
}

// Set stores value under key. By default the key gets no expiry; WithTTL sets
// one and KeepTTL keeps the current one. With NX or XX it returns an error
// wrapping ErrNotSet when the condition fails.
//
// Set is a write: it goes to the key's first reachable replica and is never
// sent twice. An error wrapping ErrTimeout means it may have been applied.
func (c *Client) Set(ctx context.Context, key string, value []byte, opts ...SetOption) error {
	var o setOptions
	for _, opt := range opts {
		opt.applySet(&o)
	}
	if o.nx && o.xx {
		return errors.New("client: SET with both NX and XX can never write")
	}
	if o.ttl < 0 || (o.ttl > 0 && o.keepTTL) {
		return errors.New("client: SET needs a positive TTL, not together with KeepTTL")
	}
	n := 3
	if o.ttl > 0 {
		n += 2
	}
	for _, b := range []bool{o.keepTTL, o.nx, o.xx} {
		if b {
			n++
		}
	}
	cmd := appendArrayLen(make([]byte, 0, 64+len(key)+len(value)), n)
	cmd = appendBulkString(cmd, "SET")
	cmd = appendBulkString(cmd, key)
	cmd = appendBulk(cmd, value)
	if o.ttl > 0 {
		cmd = appendBulkString(cmd, "PX")
		cmd = appendBulkInt(cmd, max(o.ttl.Milliseconds(), 1))
	}
	if o.keepTTL {
		cmd = appendBulkString(cmd, "KEEPTTL")
	}
	if o.nx {
		cmd = appendBulkString(cmd, "NX")
	}
	if o.xx {
		cmd = appendBulkString(cmd, "XX")
	}
	defer c.invalidate(key)()
	r, err := c.routed(ctx, "SET", write, key, o.level, cmd)
	if err != nil {
		return err
	}
	switch {
	case r.kind == '$' && r.null:
		return fmt.Errorf("client: SET %q: %w", key, ErrNotSet)
	case r.kind != '+':
		return r.unexpected("SET")
	}
	return nil
}

// invalidate drops key from the near cache before a write and returns the
// function that drops it again once the write is done, so that no read that
// overlapped the write can leave its older answer in the cache.
func (c *Client) invalidate(keys ...string) func() {
	if c.cache == nil {
		return func() {}
	}
	c.cache.invalidate(keys...)
	return func() { c.cache.invalidate(keys...) }
}

// Delete removes key and reports whether it existed. It is a write (a
// tombstone with a fresh version), sent at most once.
func (c *Client) Delete(ctx context.Context, key string, opts ...Option) (bool, error) {
	o := applyCall(opts)
	defer c.invalidate(key)()
	r, err := c.routed(ctx, "DEL", write, key, o.level, command("DEL", key))
	if err != nil {
		return false, err
	}
	if r.kind != ':' {
		return false, r.unexpected("DEL")
	}
	return r.n > 0, nil
}

// Expire sets key to expire ttl from now (millisecond precision) and reports
// whether the key existed. A ttl of zero or less deletes the key. Like Set NX,
// it is a read followed by a conditional write on the server, and it is sent
// at most once.
func (c *Client) Expire(ctx context.Context, key string, ttl time.Duration, opts ...Option) (bool, error) {
	o := applyCall(opts)
	defer c.invalidate(key)()
	ms := ttl.Milliseconds()
	if ttl > 0 {
		ms = max(ms, 1)
	}
	r, err := c.routed(ctx, "PEXPIRE", write, key, o.level, command("PEXPIRE", key, strconv.FormatInt(ms, 10)))
	if err != nil {
		return false, err
	}
	if r.kind != ':' {
		return false, r.unexpected("PEXPIRE")
	}
	return r.n == 1, nil
}

// TTL returns how long key has left to live (millisecond precision), NoTTL
// when it never expires, or an error wrapping ErrNotFound when it does not
// exist. It is a read, retried on another replica like Get.
func (c *Client) TTL(ctx context.Context, key string, opts ...Option) (time.Duration, error) {
	o := applyCall(opts)
	r, err := c.routed(ctx, "PTTL", read, key, o.level, command("PTTL", key))
	if err != nil {
		return 0, err
	}
	switch {
	case r.kind != ':':
		return 0, r.unexpected("PTTL")
	case r.n == -2:
		return 0, fmt.Errorf("client: TTL %q: %w", key, ErrNotFound)
	case r.n == -1:
		return NoTTL, nil
	}
	return time.Duration(r.n) * time.Millisecond, nil
}

// group splits keys by the node each should be sent to: the first candidate
// of each key. idx[i] lists the positions in keys of group i's keys.
type group struct {
	nodes []nodeInfo // candidates of the group's first key
	idx   []int
}

func (c *Client) groups(t *topology, keys []string) []group {
	byNode := map[string]int{}
	var gs []group
	for i, k := range keys {
		cand := c.candidates(t, k)
		if len(cand) == 0 {
			continue
		}
		g, ok := byNode[cand[0].id]
		if !ok {
			g = len(gs)
			byNode[cand[0].id] = g
			gs = append(gs, group{nodes: cand})
		}
		gs[g].idx = append(gs[g].idx, i)
	}
	return gs
}

// MGet returns the values of keys in order, nil for a key that does not
// exist. Keys are grouped by replica and each group is one MGET to that node,
// all groups in parallel. A group that fails on its node is retried on the
// next replica of its first key (any node can coordinate any key; the others
// just cost that node a hop). MGet does not use the near cache.
func (c *Client) MGet(ctx context.Context, keys []string, opts ...Option) ([][]byte, error) {
	o := applyCall(opts)
	t := c.topo.Load()
	if t == nil {
		return nil, ErrClosed
	}
	out := make([][]byte, len(keys))
	gs := c.groups(t, keys)
	errs := make([]error, len(gs))
	var wg sync.WaitGroup
	for gi, g := range gs {
		wg.Go(func() {
			cmd := appendArrayLen(nil, len(g.idx)+1)
			cmd = appendBulkString(cmd, "MGET")
			for _, i := range g.idx {
				cmd = appendBulkString(cmd, keys[i])
			}
			r, err := c.exec(ctx, "MGET", read, g.nodes, request{cmd: cmd, level: c.level(o.level)})
			switch {
			case err != nil:
				errs[gi] = err
			case r.kind != '*' || len(r.elems) != len(g.idx):
				errs[gi] = r.unexpected("MGET")
			default:
				for j, i := range g.idx {
					if e := r.elems[j]; !e.null {
						out[i] = e.str
					}
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// KV is one key and value for MSet.
type KV struct {
	Key   string
	Value []byte
}

// MSet stores every pair, grouped by replica into one MSET per node, all in
// parallel. It is not atomic: on error, some pairs may have been written (the
// error wraps ErrTimeout when any group's outcome is unknown). When a key
// appears twice, its last value wins.
func (c *Client) MSet(ctx context.Context, kvs []KV, opts ...Option) error {
	o := applyCall(opts)
	t := c.topo.Load()
	if t == nil {
		return ErrClosed
	}
	keys := make([]string, len(kvs))
	for i, kv := range kvs {
		keys[i] = kv.Key
	}
	defer c.invalidate(keys...)()
	gs := c.groups(t, keys)
	errs := make([]error, len(gs))
	var wg sync.WaitGroup
	for gi, g := range gs {
		wg.Go(func() {
			cmd := appendArrayLen(nil, 2*len(g.idx)+1)
			cmd = appendBulkString(cmd, "MSET")
			for _, i := range g.idx {
				cmd = appendBulk(appendBulkString(cmd, kvs[i].Key), kvs[i].Value)
			}
			r, err := c.exec(ctx, "MSET", write, g.nodes, request{cmd: cmd, level: c.level(o.level)})
			switch {
			case err != nil:
				errs[gi] = err
			case r.kind != '+':
				errs[gi] = r.unexpected("MSET")
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Scan iterates over every key in the cluster, each once while the topology
// is stable (a key written or deleted during the walk may or may not be seen).
// It pages through the cluster-wide SCAN cursor, which is a ring position that
// every node understands, so each page may be served by any node: a page that
// fails is retried on the next node. An error ends the iteration as the last
// pair yielded.
//
//	for key, err := range c.Scan(ctx, client.Match("user:*")) {
//		if err != nil { … }
//	}
func (c *Client) Scan(ctx context.Context, opts ...ScanOption) iter.Seq2[string, error] {
	o := scanOptions{count: 100}
	for _, opt := range opts {
		opt.applyScan(&o)
	}
	return func(yield func(string, error) bool) {
		cursor := "0"
		for {
			t := c.topo.Load()
			if t == nil {
				yield("", ErrClosed)
				return
			}
			args := []string{"SCAN", cursor, "COUNT", strconv.Itoa(max(o.count, 1))}
			if o.match != "" {
				args = append(args, "MATCH", o.match)
			}
			r, err := c.exec(ctx, "SCAN", read, c.order(t, t.ids), request{cmd: command(args...), level: c.level(o.level)})
			if err == nil && (r.kind != '*' || len(r.elems) != 2 || r.elems[0].kind != '$' || r.elems[1].kind != '*') {
				err = r.unexpected("SCAN")
			}
			if err != nil {
				yield("", err)
				return
			}
			for _, k := range r.elems[1].elems {
				if !yield(string(k.str), nil) {
					return
				}
			}
			cursor = string(r.elems[0].str)
			if cursor == "0" {
				return
			}
		}
	}
}
