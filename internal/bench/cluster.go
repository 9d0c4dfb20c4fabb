package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// Cluster modes: how Run treats its first address.
const (
	// ClusterAuto asks for CLUSTER SLOTS and drives a Redis Cluster (or a
	// ringkv cluster, which describes its ring as slots) when the target
	// answers it, else drives the addresses as plain servers (a
	// redis-server without cluster-enabled).
	ClusterAuto = "auto"
	// ClusterOn requires a Redis Cluster: a target that does not answer
	// CLUSTER SLOTS fails the run.
	ClusterOn = "on"
	// ClusterOff never asks; every address is driven as a plain server.
	ClusterOff = "off"
)

// maxRedirects bounds how many MOVED/ASK replies one request follows before
// its last one is counted as an error: a slot moves once, so a request sent
// round in circles means the cluster's own view is inconsistent.
const maxRedirects = 5

// askingCmd precedes a request sent to the node an -ASK reply named, as the
// specification requires for a slot being imported there.
var askingCmd = appendCommand(nil, "ASKING")

// discover returns the Redis Cluster's slot map as the first address sees
// it, or nil when the addresses are to be driven as plain servers.
func discover(ctx context.Context, cfg Config) (*slotMap, error) {
	if cfg.Cluster == ClusterOff {
		return nil, nil
	}
	seed := cfg.Addrs[0]
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := dial(dctx, &d, seed, cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("bench: connect %s: %w", seed, err)
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(cfg.DialTimeout)); err != nil {
		return nil, err
	}
	rr := newReplyReader(nc)
	if err := login(nc, rr, cfg.User, cfg.Password); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", seed, err)
	}
	if _, err := nc.Write(appendCommand(nil, "CLUSTER", "SLOTS")); err != nil {
		return nil, fmt.Errorf("bench: CLUSTER SLOTS on %s: %w", seed, err)
	}
	v, err := rr.value(0)
	var se serverError
	if errors.As(err, &se) {
		// "ERR unknown command 'cluster'" (a ringkv before hash slots) or
		// "ERR This instance has cluster support disabled" (a plain
		// redis-server).
		if cfg.Cluster == ClusterOn {
			return nil, fmt.Errorf("bench: %s is not a Redis Cluster node: CLUSTER SLOTS: %s", seed, se)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bench: CLUSTER SLOTS on %s: %w", seed, err)
	}
	host, _, err := net.SplitHostPort(seed)
	if err != nil {
		return nil, fmt.Errorf("bench: address %q: %w", seed, err)
	}
	return parseSlots(v, host)
}

// clusterConns is a worker's connections to a Redis Cluster: one per master,
// each request sent to its slot's master, the requests of one batch
// pipelined per node.
type clusterConns struct {
	slots       *slotMap
	dialTimeout time.Duration
	consistency string
	user, pass  string
	tls         *tls.Config

	mu     sync.Mutex // guards nodes and closed against Run's closing on cancel
	nodes  []*nodeConn
	closed bool

	// Per batch, indexed like worker.ops.
	spans []span
	askTo []int // the node an -ASK reply sent the request to, or -1

	pending, retry, used []int
	redirects            int64
}

// span is one encoded request within worker.buf and its key's slot.
type span struct {
	start, end int
	slot       uint16
}

// nodeConn is one connection to one master and the batch going to it.
type nodeConn struct {
	addr string
	nc   net.Conn
	rr   *replyReader
	out  []byte
	reqs []int // indexes into the batch, in the order sent
}

func newClusterConns(slots *slotMap, cfg Config) *clusterConns {
	return &clusterConns{slots: slots.clone(), dialTimeout: cfg.DialTimeout, consistency: cfg.Consistency,
		user: cfg.User, pass: cfg.Password, tls: cfg.TLS}
}

// conn returns the connection to node i, dialling it the first time: the
// masters of the topology are dialled before the run, a node learnt from a
// redirect when the first request goes there.
func (c *clusterConns) conn(ctx context.Context, i int) (*nodeConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, net.ErrClosed
	}
	for len(c.nodes) <= i {
		c.nodes = append(c.nodes, nil)
	}
	if n := c.nodes[i]; n != nil {
		return n, nil
	}
	addr := c.slots.addrs[i]
	dctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := dial(dctx, &d, addr, c.tls)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	n := &nodeConn{addr: addr, nc: nc, rr: newReplyReader(nc)}
	if err := handshake(nc, n.rr, c.user, c.pass, c.consistency, c.dialTimeout); err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	c.nodes[i] = n
	return n, nil
}

func (c *clusterConns) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, n := range c.nodes {
		if n != nil {
			n.nc.Close()
		}
	}
}

// dialMasters connects to every master of the topology.
func (c *clusterConns) dialMasters(ctx context.Context) error {
	for i := range c.slots.addrs {
		if _, err := c.conn(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// exchange sends the worker's batch (w.ops, encoded in w.buf at c.spans),
// each request to its slot's master, and records every reply. A -MOVED
// reply updates the slot map and the request goes again to the node it
// names; an -ASK reply sends it there once, after ASKING, without updating
// the map. A redirected request counts from its first send. Replies are read
// node by node, so a reply from a later node waits while an earlier node's
// are read; at pipeline 1 a batch has one request and nothing waits.
func (c *clusterConns) exchange(ctx context.Context, w *worker, r *run, now, woke time.Time) error {
	c.pending = c.pending[:0]
	c.askTo = c.askTo[:0]
	for i := range w.ops {
		c.pending = append(c.pending, i)
		c.askTo = append(c.askTo, -1)
	}
	for hop := 0; len(c.pending) > 0; hop++ {
		for _, i := range c.pending {
			node := int(c.slots.owner[c.spans[i].slot])
			if c.askTo[i] >= 0 {
				node = c.askTo[i]
			}
			n, err := c.conn(ctx, node)
			if err != nil {
				return err
			}
			if len(n.reqs) == 0 {
				c.used = append(c.used, node)
			}
			if c.askTo[i] >= 0 {
				n.out = append(n.out, askingCmd...)
			}
			n.out = append(n.out, w.buf[c.spans[i].start:c.spans[i].end]...)
			n.reqs = append(n.reqs, i)
		}
		for _, node := range c.used {
			n := c.nodes[node]
			if _, err := n.nc.Write(n.out); err != nil {
				return fmt.Errorf("%s: %w", n.addr, err)
			}
		}
		c.retry = c.retry[:0]
		for _, node := range c.used {
			n := c.nodes[node]
			for _, i := range n.reqs {
				if c.askTo[i] >= 0 {
					c.askTo[i] = -1
					// ASKING's own reply; were it refused, the request's
					// reply that follows says why.
					if _, err := n.rr.next(); err != nil {
						return fmt.Errorf("%s: %w", n.addr, err)
					}
				}
				msg, err := n.rr.next()
				if err != nil {
					return fmt.Errorf("%s: %w", n.addr, err)
				}
				if msg != "" && hop < maxRedirects && c.follow(n, i, msg) {
					c.retry = append(c.retry, i)
					continue
				}
				from := now // closed loop: the batch's send time
				if r.cfg.Rate > 0 {
					from = sendFrom(w.intended[i], woke)
				}
				w.record(r, w.ops[i], from, time.Now(), msg)
			}
			n.out, n.reqs = n.out[:0], n.reqs[:0]
		}
		c.used = c.used[:0]
		c.pending, c.retry = c.retry, c.pending
	}
	return nil
}

// follow applies a redirect reply to request i, which n answered, and
// reports whether msg was one.
func (c *clusterConns) follow(n *nodeConn, i int, msg string) bool {
	rd, ok := parseRedirect(msg)
	if !ok {
		return false
	}
	addr := rd.addr
	if strings.HasPrefix(addr, ":") {
		// An empty host means the host of the node that answered.
		host, _, _ := net.SplitHostPort(n.addr)
		addr = net.JoinHostPort(host, addr[1:])
	}
	to := c.slots.nodeIndex(addr)
	if rd.ask {
		c.askTo[i] = to
	} else {
		c.slots.owner[rd.slot] = uint16(to)
	}
	c.redirects++
	return true
}
