package resp

import (
	"context"
	"strings"
)

// Flusher is a Backend that can empty the cluster: FLUSHALL and FLUSHDB
// (design §2, FLUSHALL).
type Flusher interface {
	FlushAll(ctx context.Context, sync bool) error
}

// cmdFlushAll serves FLUSHALL and FLUSHDB [ASYNC|SYNC]: one database, so
// they are the same. SYNC answers once every node has purged its data;
// ASYNC (and the default) once every node holds the barrier that hides it,
// with the purge behind the reply.
func cmdFlushAll(c *conn, args [][]byte) {
	sync := false
	switch {
	case len(args) == 1:
	case len(args) == 2 && strings.EqualFold(str(args[1]), "sync"):
		sync = true
	case len(args) == 2 && strings.EqualFold(str(args[1]), "async"):
	default:
		c.fail(errSyntax)
		return
	}
	f, ok := c.s.b.(Flusher)
	if !ok {
		c.fail("ERR this server cannot flush")
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	if err := f.FlushAll(ctx, sync); err != nil {
		c.backendError(err)
		return
	}
	c.w.OK()
}
