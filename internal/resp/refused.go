package resp

import "strings"

// Commands ringkv does not serve answer with why and what to use instead,
// rather than Redis' bare "unknown command": a client library that sends
// them on its own (a transactional pipeline, say) then tells its user what to
// change. They are listed by COMMAND with their key positions, so cluster
// clients route them here and show the reason.
const (
	whyTx = "ringkv has no transactions: each key is replicated on its own and the last write wins. " +
		"Send the commands without MULTI/EXEC: redis-py pipeline(transaction=False), go-redis Pipeline() rather than TxPipeline(), " +
		"and ringkv runs a pipeline's commands in order"
	whyScript = "ringkv runs no server-side scripts or functions; run the commands from the client"
	whyType   = "ringkv stores strings only (no lists, sets, hashes, sorted sets or streams); " +
		"store a serialized value under one key, or one key per element sharing a {hash tag}"
	whyPubSub = "ringkv has no pub/sub; use a message broker"
)

// refused maps each refused command to its reason and whether its first
// argument is a key.
var refused = func() map[string]struct {
	why   string
	keyed bool
} {
	out := map[string]struct {
		why   string
		keyed bool
	}{}
	add := func(why string, keyed bool, names string) {
		for _, n := range strings.Fields(names) {
			out[n] = struct {
				why   string
				keyed bool
			}{why, keyed}
		}
	}
	add(whyTx, false, "multi exec discard unwatch")
	add(whyTx, true, "watch")
	add(whyScript, false, "eval evalsha eval_ro evalsha_ro fcall fcall_ro script function")
	add(whyType, true, `lpush rpush lpushx rpushx lpop rpop lrange llen lindex lset lrem ltrim linsert lpos lmove rpoplpush blpop brpop blmove lmpop blmpop
		sadd srem smembers sismember smismember scard spop srandmember sinter sintercard sinterstore sunion sunionstore sdiff sdiffstore smove sscan
		hset hsetnx hget hmset hmget hgetall hdel hexists hlen hkeys hvals hincrby hincrbyfloat hstrlen hscan hrandfield
		zadd zrem zscore zmscore zcard zincrby zrank zrevrank zrange zrangestore zrevrange zrangebyscore zrevrangebyscore zrangebylex zcount zlexcount
		zpopmin zpopmax bzpopmin bzpopmax zremrangebyscore zremrangebyrank zremrangebylex zunionstore zinterstore zdiffstore zscan zrandmember
		xadd xrange xrevrange xlen xread xreadgroup xdel xtrim xgroup xack xpending xclaim xautoclaim xinfo`)
	add(whyPubSub, false, "subscribe psubscribe ssubscribe unsubscribe punsubscribe sunsubscribe publish spublish pubsub")
	return out
}()

// refusedCommands returns the command table entries of the refused commands.
func refusedCommands() []*command {
	out := make([]*command, 0, len(refused))
	for name, r := range refused {
		msg := "ERR " + strings.ToUpper(name) + " is not supported: " + r.why
		cmd := &command{name: name, arity: -1, fn: func(c *conn, _ [][]byte) { c.fail(msg) }}
		switch name {
		case "multi":
			cmd.fn = func(c *conn, _ [][]byte) { c.inMulti = true; c.fail(msg) }
		case "exec", "discard":
			cmd.fn = func(c *conn, _ [][]byte) {
				if c.inMulti {
					c.inMulti = false
					c.fail("EXECABORT Transaction discarded: MULTI is not supported: " + whyTx)
					return
				}
				c.fail(msg)
			}
		}
		if r.keyed {
			cmd.firstKey, cmd.lastKey, cmd.step = 1, 1, 1
		}
		out = append(out, cmd)
	}
	return out
}

// notRun is the reply to a command sent after a refused MULTI: a client that
// believes it is queueing a transaction must not see its commands applied one
// by one, so none runs until EXEC or DISCARD ends the would-be transaction.
const notRun = "ERR command not run: this connection sent MULTI, which ringkv does not support; send EXEC or DISCARD, then the commands without MULTI"

// multiEnds reports whether a command is let through after a refused MULTI.
func multiEnds(name string) bool {
	switch name {
	case "exec", "discard", "multi", "quit", "reset":
		return true
	}
	return false
}
