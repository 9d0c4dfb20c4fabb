package replication

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

// Serve answers a peer's request against this node's replica. It is the
// transport's handler and runs concurrently.
func (c *Coordinator) Serve(_ context.Context, from string, method uint8, payload []byte) ([]byte, error) {
	switch method {
	case MethodTime:
		return c.serveTime(), nil
	case MethodFlush:
		return c.serveFlush(payload)
	case MethodApply:
		return c.serveApply(nil, from, payload)
	case MethodApplyBatch:
		return c.serveApplyBatch(from, payload)
	case MethodReadBatch:
		return c.serveReadBatch(payload)
	case MethodGetBatch:
		return c.serveGetBatch(payload)
	case MethodGet:
		c.metrics.replicaReads.Inc()
		rec, found, err := c.local.Get(payload)
		if err != nil {
			return nil, err
		}
		return encodeGetResp(&rec, found), nil
	case MethodScan:
		cursor, count, err := decodeScan(payload)
		if err != nil {
			return nil, err
		}
		page, err := c.localScan(cursor, count)
		if err != nil {
			return nil, err
		}
		return page.encode(), nil
	case MethodCount:
		// The record count, then (since issue 32) the values with an expiry:
		// a coordinator that knows only the first reads 8 bytes.
		b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(c.local.ApproxCount()))
		return binary.BigEndian.AppendUint64(b, uint64(c.local.Expiring())), nil
	}
	return nil, fmt.Errorf("replication: unknown method %d", method)
}

// serveApply applies one peer's write (MethodApply's payload p) to the
// local replica and appends MethodApply's answer to dst.
func (c *Coordinator) serveApply(dst []byte, from string, p []byte) ([]byte, error) {
	key, rec, err := c.acceptApply(from, p)
	if err != nil {
		return dst, err
	}
	res, err := c.local.Apply(key, rec)
	if err != nil {
		return dst, err
	}
	return appendApplyResp(dst, res.Applied, &res.Prev, res.PrevFound), nil
}

// acceptApply decodes a peer's write and refuses it if its version is too
// far in our future.
func (c *Coordinator) acceptApply(from string, p []byte) ([]byte, record.Record, error) {
	key, rec, err := decodeApply(p)
	if err != nil {
		return nil, rec, err
	}
	// A record stamped too far in our future would drag our clock along;
	// refuse it, as design §2 asks, and count it.
	if err := c.observe(rec.Version.TS); err != nil {
		c.metrics.skewRefused.Inc()
		if c.skewLog.allow(logEvery) {
			c.log.Warn("refused write from the future", "from", from, "version", rec.Version.String(), "err", err)
		}
		return nil, rec, err
	}
	return key, rec, nil
}

// ApplyLocal applies a record that carries its own version (a hint, a repair, a
// stream) to this node's replica, with the same clock guard as a peer's write.
func (c *Coordinator) ApplyLocal(key []byte, rec record.Record) error {
	if err := c.observe(rec.Version.TS); err != nil {
		return err
	}
	_, err := c.local.Apply(key, rec)
	return err
}

// observe folds a version that came with a record into the HLC, or refuses
// it as from the future: by the guard when there is one, which knows how far
// this node's clock is off from its peers', else by the HLC's own check.
func (c *Coordinator) observe(ts clock.Timestamp) error {
	if c.cfg.Guard == nil {
		return c.hlc.Update(ts)
	}
	if err := c.cfg.Guard.Check(ts); err != nil {
		return err
	}
	c.hlc.Observe(ts)
	return nil
}

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// SendApply sends a record that already carries its version (a hint, a repair,
// a stream) to the replica at addr.
func (c *Coordinator) SendApply(ctx context.Context, addr string, key []byte, rec *record.Record) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	_, err := c.net.Call(ctx, addr, MethodApply, encodeApply(key, rec))
	return err
}
