package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"
)

// scanBudget bounds how many stored records one replica looks at per page, so a
// long run of tombstones costs a short page, not an unbounded walk.
const scanBudget = 10

// Scan walks the whole cluster in token order. The cursor is a ring token, so it
// stays meaningful when nodes come and go: a walk started before a change goes on
// after it and sees every key that lived throughout. Each node answers from its
// own replica; a key one stale replica still holds may show up once after its
// delete, as Redis' SCAN may also return keys that vanish during the walk.
func (c *Coordinator) Scan(ctx context.Context, cursor uint64, count int, lvl Level) (keys [][]byte, next uint64, err error) {
	if count <= 0 {
		count = 10
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	nodes := c.topo.Nodes()
	type answer struct {
		page scanPage
		err  error
	}
	results := make(chan answer, len(nodes))
	asked := 0
	payload := encodeScan(cursor, count)
	for i := range nodes {
		n := nodes[i]
		if !n.Up {
			continue
		}
		asked++
		if c.isLocal(&n) {
			page, err := c.localScan(cursor, count)
			results <- answer{page, err}
			continue
		}
		go func() {
			resp, err := c.net.Call(ctx, n.Addr, MethodScan, payload)
			if err != nil {
				results <- answer{err: err}
				return
			}
			page, err := decodeScanPage(resp)
			results <- answer{page, err}
		}()
	}
	pages := make([]scanPage, 0, asked)
	for range asked {
		a := <-results
		if a.err != nil {
			// A down node's ranges are on other replicas; but one that fails
			// mid-walk may leave a gap, so the client must be told.
			return nil, 0, fmt.Errorf("%w: scan: %v", ErrTimeout, a.err)
		}
		pages = append(pages, a.page)
	}
	done := true
	bound := ^uint64(0)
	for _, p := range pages {
		if !p.Done {
			done = false
			bound = min(bound, p.Covered)
		}
	}
	type tk struct {
		tok uint64
		key []byte
	}
	var all []tk
	for _, p := range pages {
		for i, k := range p.Keys {
			if p.Tokens[i] <= bound {
				all = append(all, tk{p.Tokens[i], k})
			}
		}
	}
	slices.SortFunc(all, func(a, b tk) int {
		if a.tok != b.tok {
			if a.tok < b.tok {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.key, b.key)
	})
	for i, e := range all {
		if i > 0 && e.tok == all[i-1].tok && bytes.Equal(e.key, all[i-1].key) {
			continue
		}
		keys = append(keys, bytes.Clone(e.key))
	}
	if done || bound == ^uint64(0) {
		return keys, 0, nil
	}
	return keys, bound + 1, nil
}

var errPageFull = errors.New("page full")

// localScan reads up to count live keys from this node's replica starting at
// cursor. It never splits the keys of one token across pages, so a cursor of
// last-token+1 loses nothing.
func (c *Coordinator) localScan(cursor uint64, count int) (scanPage, error) {
	now := c.Now().UnixMilli()
	barrier := c.barrier() // what FLUSHALL killed, not yet purged
	var p scanPage
	seen := 0
	var last uint64
	err := c.local.Scan(cursor, func(tok uint64, key []byte, rec *record.Record) error {
		if seen > 0 && tok != last && (len(p.Keys) >= count || seen >= count*scanBudget) {
			return errPageFull
		}
		seen++
		last = tok
		if rec.Live(now) && rec.Version.TS >= barrier {
			p.Tokens = append(p.Tokens, tok)
			p.Keys = append(p.Keys, bytes.Clone(key))
		}
		return nil
	})
	switch {
	case errors.Is(err, errPageFull):
		p.Covered = last
	case err != nil && !errors.Is(err, storage.ErrStop):
		return p, err
	default:
		p.Done = true
	}
	return p, nil
}

// DBSize estimates the number of keys in the cluster: the sum of the nodes'
// record counts (tombstones included) divided by the replication factor.
func (c *Coordinator) DBSize(ctx context.Context) (int64, error) {
	keys, _, err := c.Keyspace(ctx)
	return keys, err
}

// Keyspace estimates the number of keys in the cluster as DBSize does, and
// of those with an expiry (INFO's keyspace line): the sums of the live
// nodes' counts divided by the replication factor.
func (c *Coordinator) Keyspace(ctx context.Context) (keys, expires int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	nodes := c.topo.Nodes()
	for i := range nodes {
		n := nodes[i]
		if !n.Up {
			continue
		}
		if c.isLocal(&n) {
			keys += c.local.ApproxCount()
			expires += c.local.Expiring()
			continue
		}
		resp, err := c.net.Call(ctx, n.Addr, MethodCount, nil)
		if err != nil || len(resp) < 8 {
			continue
		}
		keys += int64(beUint64(resp))
		if len(resp) >= 16 {
			expires += int64(beUint64(resp[8:]))
		}
	}
	rf := int64(len(c.topo.ReplicasAt(0))) // as many as any key has
	if rf == 0 {
		return 0, 0, nil
	}
	return keys / rf, expires / rf, nil
}
