package resp

import (
	"slices"
	"time"
)

// Client memory.
//
// Each connection may hold one unfinished command of up to MaxQueryBytes
// (64 MiB by default), and MaxClients connections may be open: far more
// than any host has. As Redis' maxmemory-clients does, the server therefore
// caps the query buffers of all connections together (MaxClientMemory) and,
// past the cap, closes the connections that hold the most. Only the growth
// beyond each connection's initial buffer counts: that part is what a client
// controls, and MaxClients bounds the rest.

// growBuffer is a connection reader's grow hook: it accounts delta bytes to
// the connection and the server and, when the server goes over its cap,
// closes the largest connections. It returns false when c itself is one of
// them, and the growth is then not made.
func (c *conn) growBuffer(delta int) bool {
	d := int64(delta)
	c.bufMem.Add(d)
	total := c.s.clientMem.Add(d)
	if d <= 0 || c.s.cfg.MaxClientMemory <= 0 || total <= c.s.cfg.MaxClientMemory {
		return true
	}
	c.s.evictClients()
	if c.evicted.Load() {
		c.bufMem.Add(-d)
		c.s.clientMem.Add(-d)
		return false
	}
	return true
}

// evictClients closes the connections with the largest buffers until the
// buffers left are within the cap. A closed connection's memory is freed
// when its goroutine ends, so connections already chosen count as freed.
func (s *Server) evictClients() {
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	limit := s.cfg.MaxClientMemory
	total := s.clientMem.Load()
	if total <= limit {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var candidates []*conn
	for c := range s.mu.conns {
		n := c.bufMem.Load()
		if n <= 0 {
			continue
		}
		if c.evicted.Load() {
			total -= n
			continue
		}
		candidates = append(candidates, c)
	}
	slices.SortFunc(candidates, func(a, b *conn) int {
		return int(b.bufMem.Load() - a.bufMem.Load())
	})
	for _, c := range candidates {
		if total <= limit {
			break
		}
		n := c.bufMem.Load()
		total -= n
		c.evicted.Store(true)
		s.m.closed.WithLabelValues("client_memory").Inc()
		s.log.Warn("client buffers over max-client-memory; closing the connection holding the most",
			"client", c.raddr.String(), "id", c.id, "buffer_bytes", n,
			"all_clients_bytes", s.clientMem.Load(), "max_client_memory", limit)
		// Set after evicted, so that a goroutine that sets its own deadline
		// and then checks evicted cannot miss both (see serveConn).
		if c.nc != nil {
			_ = c.nc.SetDeadline(time.Now())
		}
	}
}
