package server

import (
	"context"
	"fmt"

	"github.com/ringkv/ringkv/internal/httpapi"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/resp"
)

// clientGate is the coordinator as clients see it, over RESP and HTTP: it
// refuses their requests, unattempted, while this node must not coordinate
// them. A removed node is out of the ring and would otherwise go on
// accepting writes it no longer replicates; a node forming its cluster has
// only part of the ring, and would place keys on too few replicas.
//
// It embeds the coordinator, so the batch and inline-read interfaces the
// RESP server looks for are still there, each gated here. Peer requests do
// not pass through it: a forming node must take its peers' writes.
type clientGate struct {
	*replication.Coordinator
	s *Server
}

func (s *Server) clientGate(c *replication.Coordinator) clientGate {
	return clientGate{Coordinator: c, s: s}
}

// admit costs two atomic loads per request once the cluster has formed and
// the node is not restoring after a salvage.
func (g clientGate) admit() error {
	if g.s.topo.Current().SelfGone {
		return replication.ErrNotMember
	}
	// RESP asks the salvage's gate itself (resp.Config.Loading, to answer
	// LOADING); HTTP requests meet it here.
	if err := g.s.salv.Gate(); err != nil {
		return err
	}
	if g.s.form.forming.Load() {
		if err := g.s.formationReady(); err != nil {
			return fmt.Errorf("%w: cluster %w", replication.ErrUnavailable, err)
		}
	}
	return nil
}

func (g clientGate) Get(ctx context.Context, key []byte, lvl replication.Level) (rec record.Record, found bool, err error) {
	if err := g.admit(); err != nil {
		return rec, false, err
	}
	return g.Coordinator.Get(ctx, key, lvl)
}

// GetLocal reads this node's replica alone: the one read a restoring node
// must refuse above all, since that replica may lack acknowledged writes.
func (g clientGate) GetLocal(key []byte) (rec record.Record, found bool, err error) {
	if err := g.admit(); err != nil {
		return rec, false, err
	}
	return g.Coordinator.GetLocal(key)
}

func (g clientGate) Put(ctx context.Context, key []byte, m replication.Mutation, lvl replication.Level) (prev record.Record, prevFound bool, err error) {
	if err := g.admit(); err != nil {
		return prev, false, err
	}
	return g.Coordinator.Put(ctx, key, m, lvl)
}

func (g clientGate) Incr(ctx context.Context, key []byte, delta int64, lvl replication.Level) (int64, error) {
	if err := g.admit(); err != nil {
		return 0, err
	}
	return g.Coordinator.Incr(ctx, key, delta, lvl)
}

func (g clientGate) FlushAll(ctx context.Context, sync bool) error {
	if err := g.admit(); err != nil {
		return err
	}
	return g.Coordinator.FlushAll(ctx, sync)
}

func (g clientGate) Scan(ctx context.Context, cursor uint64, count int, lvl replication.Level) ([][]byte, uint64, error) {
	if err := g.admit(); err != nil {
		return nil, 0, err
	}
	return g.Coordinator.Scan(ctx, cursor, count, lvl)
}

func (g clientGate) DBSize(ctx context.Context) (int64, error) {
	if err := g.admit(); err != nil {
		return 0, err
	}
	return g.Coordinator.DBSize(ctx)
}

func (g clientGate) Keyspace(ctx context.Context) (keys, expires int64, err error) {
	if err := g.admit(); err != nil {
		return 0, 0, err
	}
	return g.Coordinator.Keyspace(ctx)
}

func (g clientGate) GetBatch(ctx context.Context, keys [][]byte, lvl replication.Level) []replication.GetResult {
	return g.GetBatchInto(ctx, nil, keys, lvl)
}

func (g clientGate) GetBatchInto(ctx context.Context, dst []replication.GetResult, keys [][]byte, lvl replication.Level) []replication.GetResult {
	if err := g.admit(); err != nil {
		out := dst[:0]
		for range keys {
			out = append(out, replication.GetResult{Err: err})
		}
		return out
	}
	return g.Coordinator.GetBatchInto(ctx, dst, keys, lvl)
}

func (g clientGate) PutBatch(ctx context.Context, keys [][]byte, muts []replication.Mutation, lvl replication.Level) []error {
	if err := g.admit(); err != nil {
		out := make([]error, len(keys))
		for i := range out {
			out[i] = err
		}
		return out
	}
	return g.Coordinator.PutBatch(ctx, keys, muts, lvl)
}

// ReadsAlone keeps inline reads off a node that must refuse them, so every
// read reaches admit.
func (g clientGate) ReadsAlone() bool {
	return g.admit() == nil && g.Coordinator.ReadsAlone()
}

var (
	_ resp.Backend     = clientGate{}
	_ resp.BatchPutter = clientGate{}
	_ resp.GetBatcher  = clientGate{}
	_ resp.SoloReader  = clientGate{}
	_ resp.Incrementer = clientGate{}
	_ resp.Flusher     = clientGate{}
	_ httpapi.Backend  = clientGate{}
)
